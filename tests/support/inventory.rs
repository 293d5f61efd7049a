//! The lab tests' inventories: [`Inventory::example`] is the example
//! cluster on a lab's [`Subnet`], and each test states how its cluster
//! differs from it (VRRP version, unicast, checks, service options, another
//! host...) instead of writing or patching YAML of its own. Displaying an
//! [`Inventory`] renders the YAML that `lbdeploy` reads.
//!
//! The example cluster, on 10.77.N.0/24:
//!
//! * directors keepalived01 (.11, priority 120) and keepalived02 (.12,
//!   priority 70) on eth0;
//! * real servers rs01 (.21) and rs02 (.22);
//! * VRRP instance VI_1 (virtual router 51) with the VIP .200/24;
//! * a virtual service on the VIP, port 80, round robin over rs01:80 and
//!   rs02:80;
//! * the lab's controller (.10) and client (.100).
//!
//! The builder only makes valid inventories; the tests that need a broken
//! one patch the rendered text, and rely on its layout for that:
//! keepalived02's `priority: 70 ` is on line 4, the client's address on a
//! line `  client: ADDRESS`.

use std::fmt;

use super::subnet::Subnet;

/// The directors: name, last octet, priority.
const DIRECTORS: [(&str, u8, u8); 2] =
    [("keepalived01", 11, 120), ("keepalived02", 12, 70)];

/// The controller's and the client's last octets.
const CONTROLLER: u8 = 10;
const CLIENT: u8 = 100;

/// An inventory of the example cluster with a test's changes; rendered by
/// its `Display`.
pub struct Inventory {
    subnet: Subnet,
    cluster: String,
    /// Real-server hosts: name, last octet.
    real_servers: Vec<(String, u8)>,
    virtual_router_id: u8,
    version: Option<u8>,
    /// More lines of the VRRP instance, unindented.
    instance: Vec<String>,
    unicast: bool,
    ipv6: bool,
    /// `None`: no virtual service.
    service: Option<Service>,
    /// More top-level YAML, at the end.
    top: String,
}

/// The virtual service on the VIP, port 80.
struct Service {
    /// More lines of the service, unindented.
    options: Vec<String>,
    backends: Vec<Backend>,
}

/// One real server of the service, on port 80.
struct Backend {
    host: String,
    weight: Option<u32>,
    /// Its one health check, a YAML flow mapping.
    check: Option<String>,
}

impl Backend {
    fn new(host: &str) -> Self {
        Self { host: host.to_owned(), weight: None, check: None }
    }
}

impl Inventory {
    /// The example cluster on `subnet`, named `labtest-N`.
    pub fn example(subnet: Subnet) -> Self {
        Self {
            subnet,
            cluster: "labtest".to_owned(),
            real_servers: vec![
                ("rs01".to_owned(), 21),
                ("rs02".to_owned(), 22),
            ],
            virtual_router_id: 51,
            version: None,
            instance: Vec::new(),
            unicast: false,
            ipv6: false,
            service: Some(Service {
                options: Vec::new(),
                backends: vec![Backend::new("rs01"), Backend::new("rs02")],
            }),
            top: String::new(),
        }
    }

    /// Name the cluster `name-N`: the subnet's octet in the name tells
    /// labs apart in what the directors report (webhooks, emails).
    pub fn cluster(mut self, name: &str) -> Self {
        self.cluster = name.to_owned();
        self
    }

    /// The cluster's name as rendered.
    pub fn cluster_name(&self) -> String {
        format!("{}-{}", self.cluster, self.subnet.octet())
    }

    /// Add real-server host `name` at last octet `host`; it serves nothing
    /// until [`Inventory::backend`] makes it a real server of the service.
    pub fn real_server(mut self, name: &str, host: u8) -> Self {
        self.real_servers.push((name.to_owned(), host));
        self
    }

    /// The VRRP instance's virtual router id instead of 51.
    pub fn virtual_router_id(mut self, id: u8) -> Self {
        self.virtual_router_id = id;
        self
    }

    /// The VRRP instance's protocol version, stated.
    pub fn version(mut self, version: u8) -> Self {
        self.version = Some(version);
        self
    }

    /// One more line of the VRRP instance, such as `preempt: false`.
    pub fn instance_option(mut self, line: &str) -> Self {
        self.instance.push(line.to_owned());
        self
    }

    /// VRRP by unicast between the directors' addresses (.11 and .12, of
    /// the VIP's family) instead of multicast.
    pub fn unicast(mut self) -> Self {
        self.unicast = true;
        self
    }

    /// The instance moved to IPv6: VRRPv3 (v2 has no IPv6) with the VIP
    /// fd77:N::200/64, and no virtual service (a test gives its own, on
    /// that VIP, with `top`).
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self.version = Some(3);
        self.service = None;
        self
    }

    /// One more line of the virtual service, such as `delay_loop: 1s`.
    pub fn service_option(mut self, line: &str) -> Self {
        self.service_mut().options.push(line.to_owned());
        self
    }

    /// The inventory without real-server host `name`, as an operator
    /// deletes its entry and its place in the service.
    pub fn without(mut self, name: &str) -> Self {
        self.real_servers.retain(|(n, _)| n != name);
        if let Some(service) = &mut self.service {
            service.backends.retain(|b| b.host != name);
        }
        self
    }

    /// Make host `host` a real server of the service, on port 80.
    pub fn backend(mut self, host: &str) -> Self {
        self.service_mut().backends.push(Backend::new(host));
        self
    }

    /// Real server `host` of the service with `weight`.
    pub fn weight(mut self, host: &str, weight: u32) -> Self {
        self.backend_mut(host).weight = Some(weight);
        self
    }

    /// Real server `host` of the service with the one health check
    /// `check`, a YAML flow mapping such as `{ tcp: { retry: 0 } }`.
    pub fn check(mut self, host: &str, check: &str) -> Self {
        self.backend_mut(host).check = Some(check.to_owned());
        self
    }

    /// More top-level YAML (whole lines), such as a `notification` block.
    pub fn top(mut self, yaml: &str) -> Self {
        self.top += yaml;
        self
    }

    fn service_mut(&mut self) -> &mut Service {
        self.service.as_mut().expect("the inventory has no virtual service")
    }

    fn backend_mut(&mut self, host: &str) -> &mut Backend {
        self.service_mut()
            .backends
            .iter_mut()
            .find(|b| b.host == host)
            .unwrap_or_else(|| {
                panic!("{host} is no real server of the service")
            })
    }

    /// A director's address in the VIP's family, for unicast peers.
    fn peer(&self, host: u8) -> String {
        if self.ipv6 {
            format!("'{}'", self.subnet.addr6(host))
        } else {
            self.subnet.addr(host)
        }
    }
}

impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.subnet;
        writeln!(f, "cluster: {}", self.cluster_name())?;
        writeln!(f, "directors:")?;
        for (name, host, priority) in DIRECTORS {
            writeln!(
                f,
                "  - {{ name: {name}, address: {}, interface: eth0, priority: {priority} }}",
                s.cidr(host)
            )?;
        }
        writeln!(f, "real_servers:")?;
        for (name, host) in &self.real_servers {
            writeln!(
                f,
                "  - {{ name: {name}, address: {}, interface: eth0 }}",
                s.cidr(*host)
            )?;
        }
        writeln!(f, "vrrp_instances:")?;
        writeln!(f, "  - name: VI_1")?;
        writeln!(f, "    virtual_router_id: {}", self.virtual_router_id)?;
        if let Some(version) = self.version {
            writeln!(f, "    version: {version}")?;
        }
        for line in &self.instance {
            writeln!(f, "    {line}")?;
        }
        if self.unicast {
            let [a, b] = DIRECTORS.map(|(_, host, _)| self.peer(host));
            writeln!(f, "    unicast_peers: [{a}, {b}]")?;
        }
        let vip = if self.ipv6 {
            format!("'{}/64'", s.vip6())
        } else {
            s.cidr(super::subnet::VIP)
        };
        writeln!(f, "    virtual_addresses: [{{ address: {vip} }}]")?;
        if let Some(service) = &self.service {
            writeln!(f, "virtual_services:")?;
            writeln!(f, "  - vip: {}", s.vip())?;
            writeln!(f, "    port: 80")?;
            writeln!(f, "    scheduler: rr")?;
            for line in &service.options {
                writeln!(f, "    {line}")?;
            }
            writeln!(f, "    real_servers:")?;
            for b in &service.backends {
                write!(f, "      - {{ host: {}, port: 80", b.host)?;
                if let Some(weight) = b.weight {
                    write!(f, ", weight: {weight}")?;
                }
                if let Some(check) = &b.check {
                    write!(f, ", checks: [{check}]")?;
                }
                writeln!(f, " }}")?;
            }
        }
        writeln!(f, "lab:")?;
        writeln!(f, "  controller: {}", s.cidr(CONTROLLER))?;
        writeln!(f, "  client: {}", s.cidr(CLIENT))?;
        f.write_str(&self.top)
    }
}
