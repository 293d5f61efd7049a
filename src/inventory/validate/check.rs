//! The health checks' rules: those every kind shares (`rise`), then one
//! rules function per kind (`tcp_rules`, `http_rules`, `exec_rules`,
//! `dns_rules`, `udp_rules`; ping has only timing, smtp only its
//! `helo_name`). A new check kind adds its arm in `check_rules` here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::path::Path;

use super::environment::Environment;
use super::notification::ca_pem;
use crate::inventory::diag::Finding;
use crate::inventory::schema::{
    Check, DnsCheck, DnsType, ExecCheck, HttpCheck, HttpTls, Inventory,
    TcpCheck, UDP_MAX_PAYLOAD, UdpCheck, dns_labels, helo_name_problem,
    hex_bytes,
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
        Check::Udp(udp) => udp_rules(udp, &path, out),
        Check::Smtp(smtp) => {
            if let Some(problem) = helo_name_problem(&smtp.helo_name) {
                out.push(Finding::error(format!("{path}.helo_name"), problem));
            }
        }
    }
}

/// A `udp` check's hex reads as keepalived's and fits one datagram; what
/// it asks of the reply is asked only of a required reply, and can be met.
fn udp_rules(udp: &UdpCheck, path: &str, out: &mut Vec<Finding>) {
    let fits = |len: usize| len <= UDP_MAX_PAYLOAD;
    for (key, text, wildcards) in
        [("payload", &udp.payload, false), ("reply", &udp.reply, true)]
    {
        let Some(text) = text else { continue };
        let at = format!("{path}.{key}");
        match hex_bytes(text, wildcards) {
            Err(e) => {
                let digits = if wildcards {
                    "hex digits, `x` for any four bits"
                } else {
                    "hex digits"
                };
                out.push(Finding::error(
                    at,
                    format!(
                        "{e} — write the bytes as {digits}, groups \
                         separated by blanks, e.g. `0a1b 2c`"
                    ),
                ));
            }
            Ok(bytes) if !fits(bytes.len()) => out.push(Finding::error(
                at,
                format!(
                    "{} bytes do not fit one UDP datagram — at most \
                     {UDP_MAX_PAYLOAD} (65,535 less the IPv4 and UDP \
                     headers)",
                    bytes.len()
                ),
            )),
            Ok(_) => {}
        }
    }
    for (key, len) in [
        ("min_reply_length", udp.min_reply_length),
        ("max_reply_length", udp.max_reply_length),
    ] {
        if let Some(len) = len
            && !fits(len as usize)
        {
            out.push(Finding::error(
                format!("{path}.{key}"),
                format!(
                    "{len} bytes do not fit one UDP datagram — at most \
                     {UDP_MAX_PAYLOAD}"
                ),
            ));
        }
    }
    if !udp.require_reply {
        for (key, given) in [
            ("reply", udp.reply.is_some()),
            ("min_reply_length", udp.min_reply_length.is_some()),
            ("max_reply_length", udp.max_reply_length.is_some()),
        ] {
            if given {
                out.push(Finding::error(
                    format!("{path}.{key}"),
                    format!(
                        "`{key}` is asked of a reply the check does not \
                         wait for — add `require_reply: true`"
                    ),
                ));
            }
        }
    }
    if let (Some(min), Some(max)) = (udp.min_reply_length, udp.max_reply_length)
        && min > max
    {
        out.push(Finding::error(
            format!("{path}.min_reply_length"),
            format!(
                "min_reply_length {min} is above max_reply_length {max}, \
                 so no reply could pass"
            ),
        ));
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
    if let Some(tls) = &http.tls {
        tls_rules(tls, &format!("{path}.tls"), out);
    }
}

/// An HTTP check's TLS: SNI carries a DNS name only (RFC 6066 §3), the
/// CAs are given one way and parse, and are of use only when verifying.
fn tls_rules(tls: &HttpTls, path: &str, out: &mut Vec<Finding>) {
    if let Some(name) = &tls.sni_name
        && (name.parse::<IpAddr>().is_ok()
            || name.ends_with('.')
            || dns_labels(name).is_err())
    {
        out.push(Finding::error(
            format!("{path}.sni_name"),
            "SNI carries a DNS name such as `www.example.org` (RFC 6066 \
             §3: no address, no final dot) — without `sni_name` no SNI is \
             sent and `verify` wants the server's address in its \
             certificate",
        ));
    }
    if tls.ca.is_some() && tls.ca_file.is_some() {
        out.push(Finding::error(
            path,
            "give the CAs one way: `ca` (PEM inline) or `ca_file`",
        ));
    }
    if let Some(pem) = &tls.ca
        && let Err(why) = crate::util::tls::roots_from_pem(pem)
    {
        out.push(Finding::error(
            format!("{path}.ca"),
            format!("the PEM {why}"),
        ));
    }
    if !tls.verify && (tls.ca.is_some() || tls.ca_file.is_some()) {
        out.push(Finding::warning(
            path,
            "CAs are given but `verify` is off, so any certificate passes \
             (keepalived's SSL_GET never verifies) — set `verify: true` to \
             use them",
        ));
    }
}

/// Every HTTP check's `tls.ca_file`: a file on the controller (`base`
/// resolves a relative one) holding a usable CA certificate.
pub(crate) fn tls_files(
    inv: &Inventory,
    base: &Path,
    env: &dyn Environment,
    out: &mut Vec<Finding>,
) {
    for (path, tls) in http_tls(inv) {
        if let Some(file) = &tls.ca_file
            && let Err(why) = ca_pem(file, base, env)
        {
            out.push(Finding::error(format!("{path}.ca_file"), why));
        }
    }
}

/// Every HTTP check's `tls` with its field path.
fn http_tls(inv: &Inventory) -> impl Iterator<Item = (String, &HttpTls)> {
    inv.virtual_services.iter().enumerate().flat_map(|(i, vs)| {
        vs.real_servers.iter().enumerate().flat_map(move |(j, rs)| {
            rs.checks.iter().enumerate().filter_map(move |(k, c)| match c {
                Check::HttpGet(HttpCheck { tls: Some(tls), .. }) => Some((
                    format!(
                        "virtual_services[{i}].real_servers[{j}].checks[{k}].\
                         http_get.tls"
                    ),
                    tls,
                )),
                _ => None,
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The findings of one `udp` check given as YAML.
    fn udp(yaml: &str) -> Vec<(String, String)> {
        let check = Check::Udp(serde_yaml::from_str(yaml).unwrap());
        let mut out = Vec::new();
        check_rules(&check, None, "c", &mut out);
        out.into_iter().map(|f| (f.path, f.message)).collect()
    }

    #[test]
    fn a_udp_payload_fits_one_datagram() {
        // Too long for a golden file: 2 digits a byte.
        let fits = "ff".repeat(UDP_MAX_PAYLOAD);
        assert_eq!(udp(&format!("{{ payload: '{fits}' }}")), []);
        let over = "00".repeat(UDP_MAX_PAYLOAD + 1);
        assert_eq!(
            udp(&format!("{{ payload: '{over}' }}")),
            [(
                "c.udp.payload".to_owned(),
                "65508 bytes do not fit one UDP datagram — at most 65507 \
                 (65,535 less the IPv4 and UDP headers)"
                    .to_owned()
            )]
        );
    }
}
