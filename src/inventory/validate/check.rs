//! The health checks' rules: those every kind shares (`rise`), then one
//! rules function per kind (`tcp_rules`, `http_rules`, `exec_rules`,
//! `dns_rules`; ping has only timing). A new check kind adds its arm in
//! `check_rules` here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::inventory::diag::Finding;
use crate::inventory::schema::{
    Check, DnsCheck, DnsType, ExecCheck, HttpCheck, TcpCheck, dns_labels,
};

/// The most consecutive successes a check may ask for before a server is
/// back: at `rise × delay_loop`, more than this keeps a repaired server out
/// for longer than anyone means to.
pub(crate) const MAX_RISE: u32 = 100;

/// A check's rules: those of every kind (`rise`), then its own kind's,
/// under `{path}.{kind}`. `target` is the real server's address, when
/// known.
pub(crate) fn check_rules(
    check: &Check,
    target: Option<IpAddr>,
    path: &str,
    out: &mut Vec<Finding>,
) {
    let path = format!("{path}.{}", check.kind());
    let rise = check.timing().rise;
    if !(1..=MAX_RISE).contains(&rise) {
        out.push(Finding::error(
            format!("{path}.rise"),
            format!(
                "rise {rise} is out of range — give 1–{MAX_RISE} consecutive \
                 successes before a failed server is back (1, the default, \
                 is keepalived's behaviour)"
            ),
        ));
    }
    match check {
        Check::Tcp(tcp) => tcp_rules(tcp, target, &path, out),
        Check::HttpGet(http) => http_rules(http, &path, out),
        Check::Exec(exec) => exec_rules(exec, &path, out),
        // Nothing beyond every kind's rules: it has only timing.
        Check::Ping(_) => {}
        Check::Dns(dns) => dns_rules(dns, &path, out),
    }
}

/// A `dns` check's name is a domain name that can have an answer of the
/// asked type, and what it expects reads as that type's answers.
fn dns_rules(dns: &DnsCheck, path: &str, out: &mut Vec<Finding>) {
    let kind = dns.query_type.as_str();
    match dns_labels(&dns.name) {
        Err(e) => {
            out.push(Finding::error(format!("{path}.name"), e.to_string()))
        }
        Ok(labels) if labels.is_empty() && !dns.query_type.at_root() => {
            out.push(Finding::error(
                format!("{path}.name"),
                format!(
                    "the root `.` has no {kind} record, so the check could \
                     never pass — name a name the server answers {kind} \
                     for, or ask the root for its SOA (the default type)"
                ),
            ));
        }
        Ok(_) => {}
    }
    if !dns.expect.is_empty()
        && matches!(
            dns.query_type,
            DnsType::Soa | DnsType::Rrsig | DnsType::Dnskey
        )
    {
        out.push(Finding::error(
            format!("{path}.expect"),
            format!(
                "{kind} answers have no text to expect — expect addresses of \
                 A and AAAA answers, names of NS, CNAME, PTR and MX answers, \
                 or texts of TXT answers"
            ),
        ));
        return;
    }
    for (i, want) in dns.expect.iter().enumerate() {
        let at = format!("{path}.expect[{i}]");
        let problem = match dns.query_type {
            DnsType::A => want.parse::<Ipv4Addr>().err().map(|_| {
                format!(
                    "`{want}` is not an IPv4 address — an A check expects \
                     the addresses of its answers, such as `192.0.2.10`"
                )
            }),
            DnsType::Aaaa => want.parse::<Ipv6Addr>().err().map(|_| {
                format!(
                    "`{want}` is not an IPv6 address — an AAAA check \
                     expects the addresses of its answers, such as \
                     `2001:db8::10`"
                )
            }),
            DnsType::Ns | DnsType::Cname | DnsType::Ptr | DnsType::Mx => {
                dns_labels(want).err().map(|e| format!("`{want}`: {e}"))
            }
            // Any text, the empty one too; and the types without text
            // were refused above.
            DnsType::Txt | DnsType::Soa | DnsType::Rrsig | DnsType::Dnskey => {
                None
            }
        };
        if let Some(message) = problem {
            out.push(Finding::error(at, message));
        }
    }
}

fn tcp_rules(
    tcp: &TcpCheck,
    target: Option<IpAddr>,
    path: &str,
    out: &mut Vec<Finding>,
) {
    if let Some(t) = target
        && tcp.half_open
        && t.is_ipv6()
    {
        out.push(Finding::error(
            format!("{path}.half_open"),
            format!(
                "half-open checks send IPv4 SYNs, and {t} is IPv6 — \
                 remove `half_open` for a full TCP connect"
            ),
        ));
    }
}

fn exec_rules(exec: &ExecCheck, path: &str, out: &mut Vec<Finding>) {
    if exec.command.trim().is_empty() {
        out.push(Finding::error(
            format!("{path}.command"),
            "the command is empty — give the program (and its arguments) \
             that exits 0 when the real server is fine",
        ));
    }
}

fn http_rules(http: &HttpCheck, path: &str, out: &mut Vec<Finding>) {
    if !http.path.starts_with('/') {
        out.push(Finding::error(
            format!("{path}.path"),
            format!(
                "`{}` must start with `/`, e.g. `/lvstest.html`",
                http.path
            ),
        ));
    }
    if !(100..=599).contains(&http.status_code) {
        out.push(Finding::error(
            format!("{path}.status_code"),
            format!("{} is not an HTTP status — use 100–599", http.status_code),
        ));
    }
    if let Some(d) = &http.digest
        && (d.len() != 32 || !d.chars().all(|c| c.is_ascii_hexdigit()))
    {
        out.push(Finding::error(
            format!("{path}.digest"),
            "a digest is the body's MD5 as 32 hex digits — compute it with \
             `curl -s URL | md5sum` (keepalived's genhash prints the same)",
        ));
    }
    if let Some(re) = &http.body_regex
        && let Err(e) = regex::Regex::new(re)
    {
        let first = e.to_string().lines().last().unwrap_or_default().to_owned();
        out.push(Finding::error(
            format!("{path}.body_regex"),
            format!("not a valid regular expression ({})", first.trim()),
        ));
    }
}
