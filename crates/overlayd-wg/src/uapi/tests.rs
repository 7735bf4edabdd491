//! Unit tests of `uapi`.

use super::*;

const PK_A: &str = "f4d9a4ac1dc8ee2d0c83dd14e6f5a3f67a7e0e5a0f1d9a5ab7d36a7b0c2ef101";
const PK_B: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

#[test]
fn encodes_device_and_peers() {
    let req = SetRequest {
        private_key: Some([0xab; 32]),
        listen_port: Some(51820),
        fwmark: Some(7),
        replace_peers: true,
        peers: vec![
            PeerUpdate {
                public_key: [1; 32],
                endpoint: Some("192.0.2.2:51820".parse().unwrap()),
                persistent_keepalive: Some(25),
                replace_allowed_ips: true,
                allowed_ips: vec![
                    "10.99.0.2/32".parse().unwrap(),
                    "fd00::/64".parse().unwrap(),
                ],
                ..Default::default()
            },
            PeerUpdate {
                public_key: [2; 32],
                remove: true,
                ..Default::default()
            },
        ],
    };
    let text = req.encode();
    let expected = format!(
        "set=1\nprivate_key={}\nlisten_port=51820\nfwmark=7\nreplace_peers=true\n\
         public_key={}\nendpoint=192.0.2.2:51820\npersistent_keepalive_interval=25\n\
         replace_allowed_ips=true\nallowed_ip=10.99.0.2/32\nallowed_ip=fd00::/64\n\
         public_key={}\nremove=true\n\n",
        "ab".repeat(32),
        "01".repeat(32),
        "02".repeat(32)
    );
    assert_eq!(text, expected);
    assert!(!format!("{req:?}").contains(&"ab".repeat(32)));
    assert!(SetRequest::default().is_empty());
}

#[test]
fn parses_wg_dialect() {
    let body = format!(
        "private_key={}\nlisten_port=51820\nfwmark=0\npublic_key={PK_A}\n\
         preshared_key={}\nprotocol_version=1\nendpoint=[fe80::1%eth0]:51820\n\
         last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\n\
         tx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=0\n\
         allowed_ip=10.99.0.2/32\nallowed_ip=fd00::2/128\npublic_key={PK_B}\n\
         last_handshake_time_sec=0\nlast_handshake_time_nsec=0\n",
        "11".repeat(32),
        "00".repeat(32)
    );
    let st = parse_get(&body, SystemTime::now()).unwrap();
    assert_eq!(st.public_key, Some(key::public_key(&[0x11; 32])));
    assert_eq!(st.listen_port, 51820);
    assert_eq!(st.fwmark, None);
    assert_eq!(st.peers.len(), 2);
    let a = &st.peers[0];
    assert_eq!(a.public_key, key::from_hex(PK_A, "public").unwrap());
    assert_eq!(a.endpoint, Some("[fe80::1]:51820".parse().unwrap()));
    assert_eq!(a.allowed_ips.len(), 2);
    assert_eq!((a.rx_bytes, a.tx_bytes), (20, 10));
    assert_eq!(a.persistent_keepalive, None);
    assert_eq!(
        a.last_handshake,
        Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5))
    );
    assert_eq!(st.peers[1].last_handshake, None);
}

#[test]
fn parses_boringtun_dialect() {
    let now = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let body = format!(
        "own_public_key={PK_B}\nlisten_port=4000\nfwmark=9\npublic_key={PK_A}\n\
         persistent_keepalive_interval=25\nendpoint=192.0.2.2:51820\n\
         allowed_ip=10.99.0.0/24\nlast_handshake_time_sec=3\n\
         last_handshake_time_nsec=0\nrx_bytes=1\ntx_bytes=2\n"
    );
    let st = parse_get(&body, now).unwrap();
    assert_eq!(st.public_key, Some(key::from_hex(PK_B, "public").unwrap()));
    assert_eq!(st.fwmark, Some(9));
    let p = &st.peers[0];
    assert_eq!(p.persistent_keepalive, Some(25));
    assert_eq!(p.last_handshake, Some(now - Duration::from_secs(3)));
    assert_eq!(
        p.allowed_ips,
        vec!["10.99.0.0/24".parse::<IpNet>().unwrap()]
    );
}

#[test]
fn rejects_garbage_and_splits_errno() {
    assert!(parse_get("listen_port=x\n", SystemTime::now()).is_err());
    assert!(parse_get("public_key=zz\n", SystemTime::now()).is_err());
    assert!(parse_get("nonsense\n", SystemTime::now()).is_err());
    assert_eq!(split_errno("errno=0\n\n").unwrap(), ("", 0));
    assert_eq!(
        split_errno("listen_port=1\nerrno=22\n").unwrap(),
        ("listen_port=1\n", 22)
    );
    assert!(split_errno("listen_port=1\n").is_err());
    let mut r = std::io::Cursor::new(b"a=1\nerrno=0\n\ntrailing".to_vec());
    assert_eq!(read_response(&mut r).unwrap(), "a=1\nerrno=0\n");
    let mut r = std::io::Cursor::new(b"a=1\n".to_vec());
    assert!(read_response(&mut r).is_err());
}

#[test]
fn decode_is_inverse_of_encode() {
    let req = SetRequest {
        private_key: Some([0xcd; 32]),
        listen_port: Some(1),
        fwmark: Some(0),
        replace_peers: true,
        peers: vec![
            PeerUpdate {
                public_key: [1; 32],
                update_only: true,
                preshared_key: Some([9; 32]),
                endpoint: Some("[2001:db8::1]:5".parse().unwrap()),
                persistent_keepalive: Some(0),
                replace_allowed_ips: true,
                allowed_ips: vec!["10.0.0.0/8".parse().unwrap()],
                ..Default::default()
            },
            PeerUpdate {
                public_key: [2; 32],
                remove: true,
                ..Default::default()
            },
        ],
    };
    let text = req.encode();
    let body = text.strip_prefix("set=1\n").unwrap();
    assert_eq!(decode_set(body).unwrap(), req);
    assert_eq!(decode_set("bogus=1\n"), Err(libc::EINVAL));
    assert_eq!(decode_set("endpoint=1.2.3.4:5\n"), Err(libc::EINVAL));
    assert_eq!(decode_set("listen_port=70000\n"), Err(libc::EINVAL));
    assert_eq!(decode_set("novalue\n"), Err(libc::EPROTO));
}

#[test]
fn render_then_parse_round_trips() {
    let st = DeviceStatus {
        public_key: Some(key::public_key(&[5; 32])),
        listen_port: 51820,
        fwmark: Some(3),
        peers: vec![PeerStatus {
            public_key: [6; 32],
            endpoint: Some("192.0.2.1:9".parse().unwrap()),
            allowed_ips: vec!["10.99.0.1/32".parse().unwrap()],
            persistent_keepalive: Some(25),
            last_handshake: Some(UNIX_EPOCH + Duration::new(1_700_000_000, 0)),
            rx_bytes: 1,
            tx_bytes: 2,
        }],
    };
    let text = render_get(&st, Some(&[5; 32]));
    assert_eq!(parse_get(&text, SystemTime::now()).unwrap(), st);
}
