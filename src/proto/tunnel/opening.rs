//! Opening a tunnel: the client's OPEN, the server's allow check and
//! connect, and ACCEPT or REFUSE back.

use std::time::Instant;

use tracing::{debug, info};

use super::allow;
use super::control::{Control, Transport};
use super::link::{Channel, ConnId, Flow, Link};
use super::services;
use super::{Conn, Core, Event, PipeKey};
use crate::id::{PublicKey, ToxId};
use crate::proto::reason::{CloseReason, ReasonCode, Refusal};

impl Core {
    pub(super) fn link_up(&mut self, now: Instant, friend: PublicKey) {
        let ms = self.ms(now);
        let relayed = self.net.is_relayed(now, &friend);
        self.links
            .insert(friend, Link::new(&self.config.kcp, now, ms, relayed));
        let waiting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c, Conn::Opening { friend: f, request: None, .. } if *f == friend))
            .map(|(id, _)| *id)
            .collect();
        for conn in waiting {
            self.send_open(now, conn);
        }
    }

    /// Client: a local connection (or a UDP flow's first datagram) arrived
    /// for a tunnel to `server`.
    pub fn open(
        &mut self,
        now: Instant,
        conn: ConnId,
        server: ToxId,
        target: String,
        transport: Transport,
    ) {
        let friend = server.key;
        if !self.net.has_address(&friend) {
            self.close(now, conn, CloseReason::NoAddress(friend));
            return;
        }
        if let Some(refusal) = self.tunnel_limit(&friend) {
            self.log_refusal(now, &friend, &refusal, Some(&target));
            let reason = CloseReason::LimitReached(refusal.text);
            self.events.push_back(Event::Closed { conn, reason });
            return;
        }
        self.tunnels.take(friend);
        let transport_name = transport.name();
        debug!(conn, server = %friend.short(), %target, transport = %transport_name, "local connection; opening tunnel");
        let deadline = now + self.config.open_timeout;
        self.conns.insert(
            conn,
            Conn::Opening {
                friend,
                target,
                transport,
                deadline,
                request: None,
            },
        );
        self.open_deadlines.insert((deadline, conn));
        if self.links.contains_key(&friend) {
            self.send_open(now, conn);
        } else {
            self.net.connect_now(now, &friend);
        }
    }

    fn send_open(&mut self, now: Instant, conn: ConnId) {
        let Some(Conn::Opening {
            friend,
            target,
            transport,
            request,
            ..
        }) = self.conns.get_mut(&conn)
        else {
            return;
        };
        let Some(link) = self.links.get_mut(friend) else {
            return;
        };
        let id = link.next_request;
        link.next_request = link.next_request.wrapping_add(1).max(1);
        link.requests.insert(id, conn);
        *request = Some(id);
        let message = Control::Open {
            request: id,
            protocol: transport.protocol(),
            target: target.clone(),
        };
        let friend = *friend;
        self.send_control(now, friend, &message);
    }

    pub(super) fn expire_opens(&mut self, now: Instant) {
        while let Some(&(at, conn)) = self.open_deadlines.first() {
            if at > now {
                break;
            }
            self.open_deadlines.remove(&(at, conn));
            let after = self.config.open_timeout;
            let reason = match self.conns.get(&conn) {
                Some(Conn::Opening {
                    friend,
                    request: None,
                    ..
                }) => CloseReason::ServerUnreachable {
                    server: *friend,
                    after,
                },
                Some(Conn::Opening {
                    friend,
                    request: Some(id),
                    ..
                }) => {
                    let (friend, id) = (*friend, *id);
                    if let Some(link) = self.links.get_mut(&friend) {
                        link.requests.remove(&id);
                    }
                    CloseReason::NoAnswer {
                        server: friend,
                        after,
                    }
                }
                _ => continue,
            };
            self.close(now, conn, reason);
        }
    }

    pub(super) fn on_open(
        &mut self,
        now: Instant,
        friend: PublicKey,
        request: u32,
        protocol: u8,
        target: String,
    ) {
        // A target that is a service's name (it has no port) asks for one.
        let service = services::check_service_name(&target)
            .is_ok()
            .then(|| self.config.services.get(&target).cloned());
        let refusal = match (&self.config.allow, &service) {
            (None, _) => Some(Refusal::new(
                ReasonCode::NotAllowed,
                "this node serves no tunnels",
            )),
            (Some(_), _) if Transport::from_protocol(protocol).is_none() => Some(Refusal::new(
                ReasonCode::ProtocolError,
                format!("protocol {protocol} is not supported"),
            )),
            (Some(_), Some(Some(_))) => self.tunnel_limit(&friend),
            (Some(_), Some(None)) => Some(Refusal::new(
                ReasonCode::NotAllowed,
                format!("no service named '{target}' here"),
            )),
            (Some(rules), None) => match allow::permitted(rules, &target) {
                Err(e) => Some(Refusal::new(
                    ReasonCode::ProtocolError,
                    format!("bad target: {e}"),
                )),
                Ok(true) => self.tunnel_limit(&friend),
                Ok(false) => Some(Refusal::new(
                    ReasonCode::NotAllowed,
                    format!("target {target} is not in the allow list"),
                )),
            },
        };
        if let Some(refusal) = refusal {
            self.log_refusal(now, &friend, &refusal, Some(&target));
            self.send_control(now, friend, &Control::Refuse { request, refusal });
            return;
        }
        let target = match service {
            Some(Some(address)) => address,
            _ => target,
        };
        let transport = Transport::from_protocol(protocol).unwrap_or_default();
        self.tunnels.take(friend);
        self.connecting.insert((friend, request), target.clone());
        debug!(friend = %friend.short(), %target, request, transport = %transport.name(), "connecting to target");
        self.events.push_back(Event::Connect {
            friend,
            request,
            target,
            transport,
        });
    }

    pub(super) fn on_accept(&mut self, now: Instant, friend: PublicKey, request: u32, conv: u32) {
        let Some(link) = self.links.get_mut(&friend) else {
            return;
        };
        let Some(conn) = link.requests.remove(&request) else {
            // We gave up on this request already: tell the server to let go.
            let refusal = Refusal::new(ReasonCode::Timeout, "the client gave up waiting");
            self.send_control(now, friend, &Control::Reset { conv, refusal });
            return;
        };
        if conv == 0 || link.conv_in_use(conv) {
            self.close(now, conn, CloseReason::ConvInUse(conv));
            return;
        }
        let (target, transport) = match self.conns.remove(&conn) {
            Some(Conn::Opening {
                target,
                transport,
                deadline,
                ..
            }) => {
                self.open_deadlines.remove(&(deadline, conn));
                (target, transport)
            }
            _ => return,
        };
        debug!(conn, friend = %self.net.short_label(&friend), %target, conv, transport = %transport.name(), "tunnel open");
        self.add_tunnel(now, (friend, conv), conn, target, transport);
        self.events.push_back(Event::Opened { conn });
    }

    /// Server: the target answered (for UDP: a socket is bound to it);
    /// assign a conv and tell the client.
    pub fn target_connected(
        &mut self,
        now: Instant,
        friend: PublicKey,
        request: u32,
        conn: ConnId,
        transport: Transport,
    ) -> bool {
        let ms = self.ms(now);
        let target = self
            .connecting
            .remove(&(friend, request))
            .unwrap_or_default();
        let Some(link) = self.links.get_mut(&friend) else {
            info!(conn, friend = %self.net.short_label(&friend), %target, "tunnel closed: friend went offline while connecting");
            self.tunnels.release(&friend);
            return false;
        };
        let conv = pick_conv(&friend, ms, link);
        debug!(conn, friend = %self.net.short_label(&friend), %target, conv, transport = %transport.name(), "tunnel open");
        self.add_tunnel(now, (friend, conv), conn, target, transport);
        self.send_control(now, friend, &Control::Accept { request, conv });
        true
    }

    /// An accepted tunnel's state: a KCP channel for a stream, a flow for
    /// datagrams.
    fn add_tunnel(
        &mut self,
        now: Instant,
        (friend, conv): PipeKey,
        conn: ConnId,
        target: String,
        transport: Transport,
    ) {
        self.ledger_open(now, conn, friend, target, transport);
        let ms = self.ms(now);
        let Some(link) = self.links.get_mut(&friend) else {
            return;
        };
        match transport {
            Transport::Tcp => {
                let kcp = link.new_channel_pipe(conv, &self.config.kcp, ms);
                link.channels.insert(conv, Channel::new(kcp, conn, now));
            }
            Transport::Udp => {
                link.flows.insert(conv, Flow::new(conn, now));
            }
        }
        self.conns.insert(conn, Conn::Open { friend, conv });
        self.ensure_idle_sweep(now);
    }

    /// Server: connecting to the target failed; the client is told why.
    pub fn target_failed(
        &mut self,
        now: Instant,
        friend: PublicKey,
        request: u32,
        refusal: Refusal,
    ) {
        self.tunnels.release(&friend);
        let target = self.connecting.remove(&(friend, request));
        self.log_refusal(now, &friend, &refusal, target.as_deref());
        self.send_control(now, friend, &Control::Refuse { request, refusal });
    }
}

/// `conv = crc32(client key || time || counter)`, never 0 nor one in use.
fn pick_conv(friend: &PublicKey, ms: u32, link: &mut Link) -> u32 {
    loop {
        link.conv_counter = link.conv_counter.wrapping_add(1);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&friend.0);
        hasher.update(&ms.to_le_bytes());
        hasher.update(&link.conv_counter.to_le_bytes());
        let conv = hasher.finalize();
        if conv != 0 && !link.conv_in_use(conv) {
            return conv;
        }
    }
}
