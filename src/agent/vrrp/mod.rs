//! VRRP for the director: RFC 5798 (v3, IPv4 and IPv6) and RFC 3768 (v2),
//! interoperable with keepalived.
//!
//! The protocol is split so that everything that decides is pure and can be
//! tested without sockets, root or real time:
//!
//! * [`packet`]: the advertisement codec as plain data (decode, verify,
//!   encode) for v2 and v3, with both checksums.
//! * [`ipv4`]: the outer IPv4 header raw sockets hand us, and the TTL check.
//! * [`ipv6`]: what an IPv6 raw socket reports beside the message (source,
//!   destination, hop limit), and the hop-limit check.
//! * [`arp`]: the gratuitous ARP frame a new master broadcasts for an IPv4
//!   VIP; [`ndisc`]: the unsolicited Neighbour Advertisement for an IPv6
//!   one. Both start with the header of `ethernet`; both carry the Internet checksum of [`crate::agent::sys::checksum`].
//! * [`fsm`]: the RFC 5798 §6 state machine. It takes `(now, event)` and
//!   returns actions (send an advert, add the VIPs, arm a timer at a
//!   deadline); it owns no socket, no task and no clock.
//! * [`error`]: the wire errors ([`DecodeError`](error::DecodeError)) and
//!   configuration errors these produce.
//!
//! * [`settings`]: an instance's configuration checked and resolved
//!   against the interface (family, source address, destinations).
//! * [`receive`]: RFC 5798 §7.1's receive checks, in order: what a packet
//!   is to an instance, strangers first.
//! * `filter`: the socket filter that drops adverts from anyone but the
//!   instance's peers in the kernel; `reject_log`: at most one log line
//!   per refusal reason per interval.
//! * [`notify`]: the notify hooks, as keepalived runs them.
//! * [`fault`]: why an instance cannot work (link down, no carrier, no
//!   address), keepalived's FAULT conditions.
//! * [`tracking`]: keepalived's weights: the effective priority, or a
//!   fault, from the tracked interfaces and scripts.
//! * [`sync`]: sync groups: a member in fault puts the others in fault.
//!
//! * [`socket`]: the raw IP socket for adverts and the packet socket for
//!   gratuitous ARP and NAs, bytes in and out only.
//! * [`instance`]: the socket loop, which stays thin: receive, classify,
//!   feed the event to the state machine, carry out the actions, sleep
//!   until the earliest deadline. Which instances run is
//!   [`crate::agent::director`]'s.
//!
//! ```text
//!  raw socket ──bytes──▶ packet::decode ──Advert──▶ fsm::Event ──┐
//!  timer ──────deadline reached────────────────────▶ fsm::Event ──┤
//!                                                                 ▼
//!                                            Instance::handle(now, event)
//!                                                                 │
//!  raw socket ◀──packet::encode──── SendAdvert ◀──── Vec<Action> ◀┘
//!  netlink    ◀──AddVips / RemoveVips;  packet socket ◀──arp / ndisc
//! ```

pub mod arp;
pub mod error;
mod ethernet;
pub mod fault;
pub(crate) mod filter;
pub mod fsm;
pub mod instance;
pub mod ipv4;
pub mod ipv6;
pub mod ndisc;
pub mod notify;
pub mod packet;
pub mod receive;
pub(crate) mod reject_log;
pub mod settings;
pub mod socket;
pub mod sync;
pub mod tracking;
