//! Published-port map elements as one nfnetlink batch, built as bytes and
//! sent by the Linux host over a `NETLINK_NETFILTER` socket — no `nft`
//! process per attach.
//!
//! A batch is what `nft` itself sends for `add element` / `delete element`:
//!
//! ```text
//! NFNL_MSG_BATCH_BEGIN   (res_id = NFNL_SUBSYS_NFTABLES)
//! NFT_MSG_DELSETELEM     one per map with keys to remove   (NLM_F_ACK)
//! NFT_MSG_NEWSETELEM     one per map with elements to add  (NLM_F_CREATE | NLM_F_ACK)
//! NFNL_MSG_BATCH_END
//! ```
//!
//! The kernel applies the whole batch or nothing: one failing message (a
//! missing table, an element already mapped elsewhere) aborts all of them.
//! Deletes come first so a port can move in one batch. `add` carries no
//! `NLM_F_EXCL`, like `nft add element`: the same element again is not an
//! error, the same key with other data is (`EEXIST`).
//!
//! Each element message (`linux/netfilter/nf_tables.h`):
//!
//! ```text
//! nfgenmsg { family NFPROTO_INET, version NFNETLINK_V0, res_id 0 }
//! NFTA_SET_ELEM_LIST_TABLE    "overlayd\0"
//! NFTA_SET_ELEM_LIST_SET      "publish4_any\0"
//! NFTA_SET_ELEM_LIST_ELEMENTS (nested)
//!   NFTA_LIST_ELEM            (nested, one per element)
//!     NFTA_SET_ELEM_KEY       (nested) NFTA_DATA_VALUE <key bytes>
//!     NFTA_SET_ELEM_DATA      (nested) NFTA_DATA_VALUE <data bytes>   (adds only)
//! ```
//!
//! Keys are encoded the way nft encodes a concatenation: every field is
//! padded with zeros to a multiple of 4 bytes (one 32-bit register each),
//! addresses and ports in network byte order, `inet_proto` one byte. So
//! `10.0.0.1 . tcp . 8080` is `0a000001 06000000 1f900000` (12 bytes) and
//! `udp . 53` is `11000000 00350000` (8 bytes). Data is not padded: an
//! address map's data is the 4 or 16 address bytes, a port map's the 2
//! port bytes (the maps' declared data lengths).

use std::net::IpAddr;

use netlink_packet_core::{
    Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, Nla,
    NLA_F_NESTED, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST,
};

use super::publish::{port_map, PublishedPort, MAPS};

/// `NFNL_SUBSYS_NFTABLES` (`linux/netfilter/nfnetlink.h`): the high byte of
/// an nftables message type, and the subsystem a batch is addressed to.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` (`NLMSG_MIN_TYPE`).
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFT_MSG_NEWSETELEM` (`enum nf_tables_msg_types`).
pub const NFT_MSG_NEWSETELEM: u16 = 12;
/// `NFT_MSG_DELSETELEM`.
pub const NFT_MSG_DELSETELEM: u16 = 14;
/// `NFPROTO_INET`: the family of overlayd's table.
pub const NFPROTO_INET: u8 = 1;
/// `NFPROTO_UNSPEC`: the family of the batch delimiters.
const NFPROTO_UNSPEC: u8 = 0;
/// `NFNETLINK_V0`.
const NFNETLINK_V0: u8 = 0;

/// `enum nft_set_elem_list_attributes`.
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// `enum nft_list_attributes`.
const NFTA_LIST_ELEM: u16 = 1;
/// `enum nft_set_elem_attributes`.
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
/// `enum nft_data_attributes`.
const NFTA_DATA_VALUE: u16 = 1;

/// Most elements in one message: an attribute's length is 16 bits, and
/// `NFTA_SET_ELEM_LIST_ELEMENTS` holds them all (an IPv6 element with data
/// is under 80 bytes, so 256 of them stay far below 64 KiB).
pub const MAX_ELEMENTS_PER_MESSAGE: usize = 256;

/// One netlink attribute: raw bytes, or nested attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attr {
    Bytes(u16, Vec<u8>),
    Nested(u16, Vec<Attr>),
}

impl Attr {
    /// A NUL-terminated string attribute (`NLA_STRING`, as nft sends names).
    fn string(kind: u16, s: &str) -> Attr {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        Attr::Bytes(kind, v)
    }

    /// `kind { NFTA_DATA_VALUE <bytes> }`, how keys and data are wrapped.
    fn data(kind: u16, bytes: Vec<u8>) -> Attr {
        Attr::Nested(kind, vec![Attr::Bytes(NFTA_DATA_VALUE, bytes)])
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::Bytes(_, v) => v.len(),
            Attr::Nested(_, attrs) => attrs.as_slice().buffer_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Attr::Bytes(k, _) => *k,
            Attr::Nested(k, _) => *k | NLA_F_NESTED,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Attr::Bytes(_, v) => buffer[..v.len()].copy_from_slice(v),
            Attr::Nested(_, attrs) => attrs.as_slice().emit(buffer),
        }
    }
}

/// An nfnetlink message body: `struct nfgenmsg` then attributes.
#[derive(Debug, Clone)]
struct NfMessage {
    kind: u16,
    family: u8,
    res_id: u16,
    attrs: Vec<Attr>,
}

impl NetlinkSerializable for NfMessage {
    fn message_type(&self) -> u16 {
        self.kind
    }

    fn buffer_len(&self) -> usize {
        4 + self.attrs.as_slice().buffer_len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        buffer[0] = self.family;
        buffer[1] = NFNETLINK_V0;
        buffer[2..4].copy_from_slice(&self.res_id.to_be_bytes());
        self.attrs.as_slice().emit(&mut buffer[4..]);
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Appends one concatenation field, zero-padded to a multiple of 4 bytes.
fn push_field(key: &mut Vec<u8>, field: &[u8]) {
    key.extend_from_slice(field);
    key.resize(key.len().next_multiple_of(4), 0);
}

/// The key of a port's element: `[host address .] l4proto . port`.
pub fn element_key(p: &PublishedPort) -> Vec<u8> {
    let mut key = Vec::with_capacity(24);
    if let Some(h) = p.host_ip {
        push_field(&mut key, &ip_bytes(h));
    }
    push_field(&mut key, &[p.protocol.number()]);
    push_field(&mut key, &p.host_port.to_be_bytes());
    key
}

/// The data of a port's element in the address map (`port == false`) or
/// the port map.
pub fn element_data(p: &PublishedPort, port: bool) -> Vec<u8> {
    if port {
        p.container_port.to_be_bytes().to_vec()
    } else {
        ip_bytes(p.container_ip)
    }
}

/// One element message of a batch, for error reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    /// Its sequence number.
    pub seq: u32,
    /// What it does, e.g. `add to publish4_any: 8080/tcp -> 10.0.0.2:80`.
    pub what: String,
}

/// An element batch ready to send, and what each message in it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementBatch {
    /// The datagram: batch begin, element messages, batch end.
    pub bytes: Vec<u8>,
    /// The element messages, each acknowledged by the kernel.
    pub messages: Vec<BatchMessage>,
}

fn push_message(out: &mut Vec<u8>, flags: u16, seq: u32, body: NfMessage) {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(body));
    msg.finalize();
    let start = out.len();
    out.resize(start + msg.buffer_len(), 0);
    msg.serialize(&mut out[start..]);
}

fn delimiter(kind: u16) -> NfMessage {
    NfMessage {
        kind,
        family: NFPROTO_UNSPEC,
        res_id: NFNL_SUBSYS_NFTABLES,
        attrs: Vec::new(),
    }
}

fn element_list(table: &str, set: &str, elements: Vec<Attr>) -> Vec<Attr> {
    vec![
        Attr::string(NFTA_SET_ELEM_LIST_TABLE, table),
        Attr::string(NFTA_SET_ELEM_LIST_SET, set),
        Attr::Nested(NFTA_SET_ELEM_LIST_ELEMENTS, elements),
    ]
}

fn describe(verb: &str, set: &str, ports: &[&PublishedPort]) -> String {
    let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    format!("{verb} {set}: {}", list.join(", "))
}

/// The batch that deletes `remove` and adds `add` in the maps of `table`
/// (family inet), numbered from `seq` (the begin delimiter; each message
/// after it takes the next number). Empty when there is nothing to do.
pub fn element_batch(
    table: &str,
    add: &[PublishedPort],
    remove: &[PublishedPort],
    seq: u32,
) -> ElementBatch {
    let mut body = Vec::new();
    let mut messages = Vec::new();
    let mut next = seq;
    let mut emit = |kind: u16, set: String, ports: Vec<&PublishedPort>, port: bool| {
        let adding = kind == NFT_MSG_NEWSETELEM;
        let elements = ports
            .iter()
            .map(|p| {
                let mut elem = vec![Attr::data(NFTA_SET_ELEM_KEY, element_key(p))];
                if adding {
                    elem.push(Attr::data(NFTA_SET_ELEM_DATA, element_data(p, port)));
                }
                Attr::Nested(NFTA_LIST_ELEM, elem)
            })
            .collect();
        next = next.wrapping_add(1);
        let flags = if adding {
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        };
        let body_msg = NfMessage {
            kind: (NFNL_SUBSYS_NFTABLES << 8) | kind,
            family: NFPROTO_INET,
            res_id: 0,
            attrs: element_list(table, &set, elements),
        };
        push_message(&mut body, flags, next, body_msg);
        let verb = if adding { "add to" } else { "delete from" };
        messages.push(BatchMessage {
            seq: next,
            what: describe(verb, &set, &ports),
        });
    };
    for (kind, list) in [(NFT_MSG_DELSETELEM, remove), (NFT_MSG_NEWSETELEM, add)] {
        for (map, _, _) in MAPS {
            let ports: Vec<&PublishedPort> = list.iter().filter(|p| p.map_name() == map).collect();
            for chunk in ports.chunks(MAX_ELEMENTS_PER_MESSAGE) {
                emit(kind, map.to_string(), chunk.to_vec(), false);
                emit(kind, port_map(map), chunk.to_vec(), true);
            }
        }
    }
    if messages.is_empty() {
        return ElementBatch {
            bytes: Vec::new(),
            messages,
        };
    }
    let mut bytes = Vec::with_capacity(body.len() + 40);
    push_message(
        &mut bytes,
        NLM_F_REQUEST,
        seq,
        delimiter(NFNL_MSG_BATCH_BEGIN),
    );
    bytes.extend_from_slice(&body);
    push_message(
        &mut bytes,
        NLM_F_REQUEST,
        next.wrapping_add(1),
        delimiter(NFNL_MSG_BATCH_END),
    );
    ElementBatch { bytes, messages }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::publish::tests::port;
    use crate::firewall::L4Proto;
    use netlink_packet_core::{NetlinkBuffer, NlaBuffer, NlasIterator};

    #[test]
    fn keys_pad_every_field_to_four_bytes_in_network_order() {
        let p = port(None, L4Proto::Udp, 53, "10.0.0.2", 5353);
        assert_eq!(element_key(&p), [17, 0, 0, 0, 0, 53, 0, 0]);
        assert_eq!(element_data(&p, false), [10, 0, 0, 2]);
        assert_eq!(element_data(&p, true), [0x14, 0xe9]);
        let p = port(Some("10.0.0.1"), L4Proto::Tcp, 8080, "10.0.0.2", 80);
        assert_eq!(element_key(&p), [10, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let p = port(Some("fd00::1"), L4Proto::Sctp, 443, "fd00::2", 443);
        let k = element_key(&p);
        assert_eq!(k.len(), 24);
        assert_eq!(k[..2], [0xfd, 0]);
        assert_eq!(k[15], 1);
        assert_eq!(k[16..], [132, 0, 0, 0, 1, 0xbb, 0, 0]);
        assert_eq!(element_data(&p, false).len(), 16);
    }

    /// One message of a datagram: (type, flags, seq, nfgenmsg, attributes).
    type Parsed = (u16, u16, u32, [u8; 4], Vec<u8>);

    fn messages(bytes: &[u8]) -> Vec<Parsed> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let buf = NetlinkBuffer::new_checked(rest).unwrap();
            let len = buf.length() as usize;
            assert_eq!(len % 4, 0);
            let payload = buf.payload();
            out.push((
                buf.message_type(),
                buf.flags(),
                buf.sequence_number(),
                payload[..4].try_into().unwrap(),
                payload[4..].to_vec(),
            ));
            rest = &rest[len..];
        }
        out
    }

    fn attrs(bytes: &[u8]) -> Vec<(u16, bool, Vec<u8>)> {
        NlasIterator::new(bytes)
            .map(|a: Result<NlaBuffer<&[u8]>, _>| {
                let a = a.unwrap();
                (a.kind(), a.nested_flag(), a.value().to_vec())
            })
            .collect()
    }

    #[test]
    fn batch_is_begin_deletes_adds_end_with_consecutive_sequence_numbers() {
        let add = port(None, L4Proto::Tcp, 8080, "10.0.0.2", 80);
        let gone = port(Some("127.0.0.1"), L4Proto::Udp, 5353, "10.0.0.3", 53);
        let b = element_batch("t", &[add], &[gone], 100);
        let msgs = messages(&b.bytes);
        let kinds: Vec<(u16, u16, u32)> = msgs.iter().map(|m| (m.0, m.1, m.2)).collect();
        let del = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELSETELEM;
        let new = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
        assert_eq!(
            kinds,
            vec![
                (NFNL_MSG_BATCH_BEGIN, 1, 100),
                (del, 1 | 4, 101),
                (del, 1 | 4, 102),
                (new, 1 | 4 | 0x400, 103),
                (new, 1 | 4 | 0x400, 104),
                (NFNL_MSG_BATCH_END, 1, 105),
            ]
        );
        // Delimiters address the nftables subsystem; elements the inet family.
        assert_eq!(msgs[0].3, [0, 0, 0, 10]);
        assert_eq!(msgs[1].3, [NFPROTO_INET, 0, 0, 0]);
        let seqs: Vec<u32> = b.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [101, 102, 103, 104]);
        assert!(b.messages[0].what.starts_with("delete from publish4_addr:"));
        assert_eq!(
            b.messages[3].what,
            "add to publish4_any_port: 8080/tcp -> 10.0.0.2:80"
        );

        // The port map's add: table, set, one element with key and data.
        let top = attrs(&msgs[4].4);
        assert_eq!(top[0], (NFTA_SET_ELEM_LIST_TABLE, false, b"t\0".to_vec()));
        assert_eq!(
            top[1],
            (
                NFTA_SET_ELEM_LIST_SET,
                false,
                b"publish4_any_port\0".to_vec()
            )
        );
        assert_eq!((top[2].0, top[2].1), (NFTA_SET_ELEM_LIST_ELEMENTS, true));
        let elems = attrs(&top[2].2);
        assert_eq!(elems.len(), 1);
        assert_eq!((elems[0].0, elems[0].1), (NFTA_LIST_ELEM, true));
        let elem = attrs(&elems[0].2);
        let key = attrs(&elem[0].2);
        let data = attrs(&elem[1].2);
        assert_eq!(elem[0].0, NFTA_SET_ELEM_KEY);
        assert_eq!(
            key,
            vec![(NFTA_DATA_VALUE, false, vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0])]
        );
        assert_eq!(elem[1].0, NFTA_SET_ELEM_DATA);
        assert_eq!(data, vec![(NFTA_DATA_VALUE, false, vec![0, 80])]);
        // A delete carries keys only.
        let del_elem = attrs(&attrs(&attrs(&msgs[1].4)[2].2)[0].2);
        assert_eq!(del_elem.len(), 1);
        assert_eq!(del_elem[0].0, NFTA_SET_ELEM_KEY);
    }

    #[test]
    fn one_message_per_map_whatever_the_number_of_ports() {
        let ports: Vec<PublishedPort> = (8000..8010)
            .map(|p| port(None, L4Proto::Tcp, p, "10.0.0.2", p))
            .chain([port(None, L4Proto::Udp, 53, "fd00::2", 53)])
            .collect();
        let b = element_batch("t", &ports, &[], 1);
        let maps: Vec<&str> = b
            .messages
            .iter()
            .map(|m| m.what.split(':').next().unwrap())
            .collect();
        assert_eq!(
            maps,
            [
                "add to publish4_any",
                "add to publish4_any_port",
                "add to publish6_any",
                "add to publish6_any_port"
            ]
        );
        let msgs = messages(&b.bytes);
        assert_eq!(attrs(&attrs(&msgs[1].4)[2].2).len(), 10);
        assert!(element_batch("t", &[], &[], 1).bytes.is_empty());
    }

    #[test]
    fn a_4096_port_range_is_split_into_messages_whose_attributes_fit() {
        let ports: Vec<PublishedPort> = (0..4096u16)
            .map(|i| {
                port(
                    Some("fd00::1"),
                    L4Proto::Udp,
                    10000 + i,
                    "fd00::2",
                    20000 + i,
                )
            })
            .collect();
        let b = element_batch("t", &ports, &[], 1);
        assert_eq!(b.messages.len(), 2 * 4096 / MAX_ELEMENTS_PER_MESSAGE);
        let mut elements = 0;
        for m in &messages(&b.bytes)[1..b.messages.len() + 1] {
            let list = &attrs(&m.4)[2];
            assert!(
                list.2.len() + 4 <= usize::from(u16::MAX),
                "{}",
                list.2.len()
            );
            elements += attrs(&list.2).len();
        }
        assert_eq!(elements, 2 * 4096);
    }
}
