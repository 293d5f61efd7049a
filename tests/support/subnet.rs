//! The lab subnets: [`Subnet::allocate`] hands every lab of the test binary
//! a /24 of its own in 10.77.0.0/16, with the IPv6 /64 that goes with it,
//! so no test picks an address range by hand and no two labs share one.
//!
//! Labs are separate namespaces and could reuse addresses, but a subnet of
//! its own keeps a lab's addresses (in failure messages, in `ip` and
//! tcpdump output) from being mistaken for another's, and lets a test prove
//! that one lab cannot reach another (`two_labs_run_side_by_side`).
//!
//! All lab tests run as threads of one binary (`tests/tests.rs`), so a
//! process-wide counter is enough to keep them apart. Which subnet a test
//! gets depends on the order the tests start in; everything a test says
//! about its addresses comes from its [`Subnet`], never from a number.

use std::sync::atomic::{AtomicU8, Ordering};

/// The third octet of the next subnet to hand out.
static NEXT: AtomicU8 = AtomicU8::new(FIRST);

/// The subnets handed out are 10.77.FIRST.0/24 to 10.77.LAST.0/24: the
/// range the lab tests have always used, with room for every lab test.
const FIRST: u8 = 1;
const LAST: u8 = 199;

/// The host part of the VIP, the same in every lab.
pub const VIP: u8 = 200;

/// A lab's subnet: 10.77.`octet`.0/24 and, for IPv6 VIPs and peers,
/// fd77:`octet`::/64.
#[derive(Clone, Copy)]
pub struct Subnet(u8);

impl Subnet {
    /// A subnet no other lab of this process has.
    ///
    /// # Panics
    /// When the range is used up: more lab tests than it holds.
    pub fn allocate() -> Self {
        let octet = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            (FIRST..=LAST).contains(&octet),
            "more than {} lab subnets asked for: widen 10.77.{FIRST}–{LAST}.0/24",
            LAST - FIRST + 1
        );
        Self(octet)
    }

    /// The third octet, which also tells labs' cluster names apart.
    pub fn octet(self) -> u8 {
        self.0
    }

    /// The IPv4 address of `host` (its last octet).
    pub fn addr(self, host: u8) -> String {
        format!("10.77.{}.{host}", self.0)
    }

    /// The IPv4 address of `host` with the subnet's prefix length, as an
    /// inventory gives interface addresses.
    pub fn cidr(self, host: u8) -> String {
        format!("{}/24", self.addr(host))
    }

    /// The IPv4 VIP.
    pub fn vip(self) -> String {
        self.addr(VIP)
    }

    /// The web page behind the IPv4 VIP, as the client fetches it.
    pub fn url(self) -> String {
        format!("http://{}/", self.vip())
    }

    /// The IPv6 address of `host`: its number is the last group, written
    /// as the same digits as the IPv4 octet (fd77:N::11 for .11).
    pub fn addr6(self, host: u8) -> String {
        format!("fd77:{}::{host}", self.0)
    }

    /// The IPv6 VIP.
    pub fn vip6(self) -> String {
        self.addr6(VIP)
    }
}
