//! The request handler: authoritative answers for the zone, forwarding for the rest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::forward::Forwarder;
use crate::records::{Lookup, Records};
use crate::scope::ScopeCell;

/// Largest UDP payload we offer clients (the DNS Flag Day 2020 value).
const SERVER_PAYLOAD: u16 = 1232;

/// Running totals of what the server answered, for metrics.
#[derive(Debug, Default)]
pub struct DnsStats {
    queries: AtomicU64,
    answered: AtomicU64,
    servfail: AtomicU64,
}

/// A copy of [`DnsStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStatsSnapshot {
    /// Every query received (any transport, any outcome).
    pub queries: u64,
    /// Responses carrying at least one answer record.
    pub answered: u64,
    /// Responses with SERVFAIL (upstream failed, timed out or overloaded).
    pub servfail: u64,
}

impl DnsStats {
    pub(crate) fn record(&self, info: &ResponseInfo) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        if info.response_code == ResponseCode::ServFail {
            self.servfail.fetch_add(1, Ordering::Relaxed);
        } else if info.counts().answers > 0 {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The totals now.
    pub fn snapshot(&self) -> DnsStatsSnapshot {
        DnsStatsSnapshot {
            queries: self.queries.load(Ordering::Relaxed),
            answered: self.answered.load(Ordering::Relaxed),
            servfail: self.servfail.load(Ordering::Relaxed),
        }
    }
}

/// Answers queries from a [`Records`] set and forwards everything else.
#[derive(Debug, Clone)]
pub(crate) struct Handler {
    records: Records,
    forwarder: Option<Arc<Forwarder>>,
    stats: Arc<DnsStats>,
    scope: ScopeCell,
    /// The listener address this handler answers on, for scoping.
    listener: Option<std::net::IpAddr>,
}

impl Handler {
    pub(crate) fn new(
        records: Records,
        forwarder: Option<Arc<Forwarder>>,
        scope: ScopeCell,
    ) -> Self {
        Self {
            records,
            forwarder,
            stats: Arc::default(),
            scope,
            listener: None,
        }
    }

    /// This handler for queries arriving on `listener` (answers are scoped
    /// to what is visible from there).
    pub(crate) fn for_listener(&self, listener: std::net::IpAddr) -> Self {
        Self {
            listener: Some(listener),
            ..self.clone()
        }
    }

    /// The server's running totals.
    pub(crate) fn stats(&self) -> &Arc<DnsStats> {
        &self.stats
    }

    /// Whether `request` is answered without network I/O (in-zone, malformed,
    /// or refused), so a transport may run the handler inline instead of
    /// spawning a task for it.
    pub(crate) fn answers_locally(&self, request: &Request) -> bool {
        if self.forwarder.is_none() || request.metadata.op_code != OpCode::Query {
            return true;
        }
        match request.queries.queries() {
            [query] => self.records.zone_lower().zone_of(query.name()),
            _ => true,
        }
    }
}

/// The response EDNS for a request: present iff the client used EDNS, with a
/// payload limit no larger than what the client can take.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|theirs| {
        let mut ours = Edns::new();
        ours.set_max_payload(theirs.max_payload().clamp(512, SERVER_PAYLOAD));
        ours
    })
}

/// What goes into an authoritative response.
struct Authoritative {
    code: ResponseCode,
    first: Arc<[Record]>,
    second: Arc<[Record]>,
    authority: Arc<[Record]>,
}

impl Authoritative {
    fn answer(first: Arc<[Record]>, second: Arc<[Record]>) -> Self {
        let authority: Arc<[Record]> = Arc::from([]);
        Self {
            code: ResponseCode::NoError,
            first,
            second,
            authority,
        }
    }

    /// NOERROR with no answer (name exists, type does not), or NXDOMAIN:
    /// either way the SOA goes into the authority section (RFC 2308).
    fn negative(code: ResponseCode, soa: Arc<[Record]>) -> Self {
        let empty: Arc<[Record]> = Arc::from([]);
        Self {
            code,
            first: empty.clone(),
            second: empty,
            authority: soa,
        }
    }
}

impl Handler {
    fn authoritative(&self, request: &Request) -> Authoritative {
        let Ok(info) = request.request_info() else {
            return Authoritative::negative(ResponseCode::FormErr, Arc::from([]));
        };
        let qtype = info.query.query_type();
        let (found, soa) = self.records.lookup(info.query.name());
        let empty: Arc<[Record]> = Arc::from([]);
        let answer = |first: Arc<[Record]>, second: Arc<[Record]>, soa: Arc<[Record]>| {
            if first.is_empty() && second.is_empty() {
                Authoritative::negative(ResponseCode::NoError, soa)
            } else {
                Authoritative::answer(first, second)
            }
        };
        match found {
            Lookup::Apex => match qtype {
                RecordType::SOA => Authoritative::answer(soa, empty),
                RecordType::NS => Authoritative::answer(self.records.ns(), empty),
                RecordType::ANY => Authoritative::answer(soa, self.records.ns()),
                _ => Authoritative::negative(ResponseCode::NoError, soa),
            },
            Lookup::Found { a, aaaa } => {
                let (a, aaaa) = match (self.listener, self.scope.get()) {
                    (Some(at), Some(policy)) => (
                        crate::scope::filter(a, policy.as_ref(), at),
                        crate::scope::filter(aaaa, policy.as_ref(), at),
                    ),
                    _ => (a, aaaa),
                };
                match qtype {
                    RecordType::A => answer(a, empty, soa),
                    RecordType::AAAA => answer(aaaa, empty, soa),
                    RecordType::ANY => answer(a, aaaa, soa),
                    _ => Authoritative::negative(ResponseCode::NoError, soa),
                }
            }
            Lookup::Interior => Authoritative::negative(ResponseCode::NoError, soa),
            Lookup::Missing => Authoritative::negative(ResponseCode::NXDomain, soa),
        }
    }

    /// Answers `request` with an empty response carrying `code`.
    pub(crate) async fn respond_error<R: ResponseHandler>(
        &self,
        request: &Request,
        code: ResponseCode,
        mut response: R,
    ) -> ResponseInfo {
        let edns = response_edns(request);
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = edns.as_ref() {
            builder.edns(edns);
        }
        let mut message = builder.error_msg(&request.metadata, code);
        message.metadata_mut().recursion_available = self.forwarder.is_some();
        match response.send_response(message).await {
            Ok(info) => info,
            Err(error) => send_failed(request, error),
        }
    }

    async fn forward<R: ResponseHandler>(
        &self,
        request: &Request,
        forwarder: &Forwarder,
        mut response: R,
    ) -> ResponseInfo {
        let Ok(info) = request.request_info() else {
            return self
                .respond_error(request, ResponseCode::FormErr, response)
                .await;
        };
        let dnssec_ok = request
            .edns
            .as_ref()
            .is_some_and(|edns| edns.flags().dnssec_ok);
        let reply = match forwarder
            .resolve(
                info.query.original(),
                dnssec_ok,
                request.metadata.checking_disabled,
            )
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(query = %info.query.name(), %error, "forwarding failed, answering SERVFAIL");
                return self
                    .respond_error(request, ResponseCode::ServFail, response)
                    .await;
            }
        };
        let edns = response_edns(request);
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = edns.as_ref() {
            builder.edns(edns);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        metadata.response_code = reply.metadata.response_code;
        metadata.truncation = reply.metadata.truncation;
        let message = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response.send_response(message).await {
            Ok(info) => info,
            Err(error) => send_failed(request, error),
        }
    }
}

fn send_failed(request: &Request, error: impl std::fmt::Display) -> ResponseInfo {
    tracing::debug!(src = %request.src(), %error, "could not send DNS response");
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        let info = self.answer(request, response).await;
        self.stats.record(&info);
        info
    }
}

impl Handler {
    async fn answer<R: ResponseHandler>(&self, request: &Request, mut response: R) -> ResponseInfo {
        if request.metadata.op_code != OpCode::Query {
            return self
                .respond_error(request, ResponseCode::NotImp, response)
                .await;
        }
        let Ok(info) = request.request_info() else {
            return self
                .respond_error(request, ResponseCode::FormErr, response)
                .await;
        };
        if !self.records.zone_lower().zone_of(info.query.name()) {
            return match self.forwarder.as_deref() {
                Some(forwarder) => self.forward(request, forwarder, response).await,
                None => {
                    self.respond_error(request, ResponseCode::Refused, response)
                        .await
                }
            };
        }
        // Other classes are not served; zone transfers are not offered.
        if !matches!(info.query.query_class(), DNSClass::IN | DNSClass::ANY)
            || matches!(info.query.query_type(), RecordType::AXFR | RecordType::IXFR)
        {
            return self
                .respond_error(request, ResponseCode::Refused, response)
                .await;
        }

        let answer = self.authoritative(request);
        let edns = response_edns(request);
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = edns.as_ref() {
            builder.edns(edns);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = answer.code != ResponseCode::FormErr;
        metadata.recursion_available = self.forwarder.is_some();
        metadata.response_code = answer.code;
        let message = builder.build(
            metadata,
            answer.first.iter().chain(answer.second.iter()),
            answer.authority.iter(),
            std::iter::empty(),
            std::iter::empty(),
        );
        match response.send_response(message).await {
            Ok(info) => info,
            Err(error) => send_failed(request, error),
        }
    }
}
