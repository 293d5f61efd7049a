//! The director's kernel data plane: what forwards a client's packets for a
//! VIP to a real server by rewriting the destination MAC (Direct Routing).
//!
//! * [`buckets`] — the real server of every flow bucket (weighted
//!   rendezvous hashing; pure, deterministic);
//! * [`nft`] — the nftables netdev back end: the table rendered from the
//!   buckets (pure) and installed in one transaction.
//!
//! The IPVS back end (generic netlink) joins here behind the same choice
//! (`dataplane: auto | ipvs | nftables`).

pub mod buckets;
pub mod nft;
