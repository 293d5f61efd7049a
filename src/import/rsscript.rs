//! Real-server scripts of the rc.local/arptables kind, read for the VIP,
//! the real server's own address (RIP) and its interface.
//!
//! These scripts are shell, not a format: this reads the few shapes the
//! classic LVS-DR recipes use — `VIP=…`/`RIP=…` assignments (expanded in
//! later lines), `ifconfig IF:N VIP …` (also inside an `echo "…" >>
//! /etc/rc.local`), `ip addr add VIP dev IF`, `arptables … -d VIP` and
//! `--mangle-ip-s RIP` — and ignores every other line. lbdeploy replaces all
//! of it (VIP on `lo`, `arp_ignore`/`arp_announce`), so nothing else in the
//! script is carried over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::diag::{Pos, Report};
use super::keepalived::Spanned;

/// What a real-server script says about its host.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// The script as the user named it.
    pub file: Arc<Path>,
    /// The VIPs it puts on the host or hides from ARP.
    pub vips: Vec<Spanned<IpAddr>>,
    /// The host's own address, when the script names it.
    pub rip: Option<Spanned<IpAddr>>,
    /// The interface facing the directors, when the VIP goes on an alias of
    /// it (`eth0:1`) rather than on `lo`.
    pub interface: Option<Spanned<String>>,
    /// The first line with an `arptables` rule, which lbdeploy replaces.
    pub arptables: Option<Pos>,
}

/// Read the script at `path`; `None` (and an error) when it is unreadable.
pub fn read(path: &Path, report: &mut Report) -> Option<Script> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(parse(path, &text, report)),
        Err(e) => {
            report.error(
                None,
                format!(
                    "cannot read real-server script {}: {e}",
                    path.display()
                ),
            );
            None
        }
    }
}

/// Read a script's text.
pub fn parse(path: &Path, text: &str, report: &mut Report) -> Script {
    let file: Arc<Path> = path.into();
    let mut script = Script {
        file: file.clone(),
        vips: Vec::new(),
        rip: None,
        interface: None,
        arptables: None,
    };
    let mut vars = HashMap::new();
    let mut rips = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let pos = Pos {
            file: file.clone(),
            line: u32::try_from(n + 1).unwrap_or(u32::MAX),
            col: 1,
        };
        let words = words(line, &vars);
        for w in &words {
            if let Some((name, value)) = w.split_once('=')
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                vars.insert(name.to_owned(), value.to_owned());
                let ip = value.parse::<IpAddr>().ok();
                match (ip, name.to_ascii_uppercase()) {
                    (Some(ip), n) if n.contains("VIP") => {
                        push(&mut script.vips, ip, &pos)
                    }
                    (Some(ip), n) if n.contains("RIP") => {
                        push(&mut rips, ip, &pos)
                    }
                    _ => {}
                }
            }
        }
        read_commands(&words, &pos, &mut script, &mut rips);
    }
    if let [first, rest @ ..] = rips.as_slice() {
        for other in rest.iter().filter(|r| r.value != first.value) {
            report.warn(
                Some(&other.pos),
                format!(
                    "a second real-server address {} is ignored: this \
                     script is read as the host at {}",
                    other.value, first.value
                ),
            );
        }
        script.rip = Some(first.clone());
    }
    script
}

/// The commands that say something about addresses.
fn read_commands(
    words: &[String],
    pos: &Pos,
    script: &mut Script,
    rips: &mut Vec<Spanned<IpAddr>>,
) {
    let after = |i: usize, k: usize| words.get(i + k).map(String::as_str);
    let ip = |s: Option<&str>| {
        s.and_then(|s| s.split('/').next()?.parse::<IpAddr>().ok())
    };
    let arptables = words.iter().any(|w| w.ends_with("arptables"));
    if arptables && script.arptables.is_none() {
        script.arptables = Some(pos.clone());
    }
    for (i, w) in words.iter().enumerate() {
        let command = w.rsplit('/').next().unwrap_or(w);
        let (vip, dev) = match (command, after(i, 1), after(i, 2)) {
            ("ifconfig", Some(dev), addr) => (ip(addr), Some(dev)),
            ("ip", Some(a), Some("add")) if a.starts_with('a') => {
                let dev = words[i..].iter().position(|w| w == "dev");
                (ip(after(i, 3)), dev.and_then(|d| after(i, d + 1)))
            }
            ("-d", ..) if arptables => (ip(after(i, 1)), None),
            ("--mangle-ip-s", Some(rip), _) => {
                if let Some(rip) = ip(Some(rip)) {
                    push(rips, rip, pos);
                }
                continue;
            }
            _ => continue,
        };
        let Some(vip) = vip else { continue };
        push(&mut script.vips, vip, pos);
        let base = dev.map(|d| d.split(':').next().unwrap_or(d));
        if let Some(base) = base.filter(|b| *b != "lo") {
            script.interface.get_or_insert(Spanned {
                value: base.to_owned(),
                pos: pos.clone(),
            });
        }
    }
}

fn push(list: &mut Vec<Spanned<IpAddr>>, value: IpAddr, pos: &Pos) {
    if !list.iter().any(|s| s.value == value) {
        list.push(Spanned { value, pos: pos.clone() });
    }
}

/// Shell words of a line: comments dropped, quotes removed, `$VAR` and
/// `${VAR}` expanded from earlier assignments.
fn words(line: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let code = match line.trim_start().starts_with('#') {
        true => "",
        false => line,
    };
    let mut expanded = code.replace(['"', '\'', ';'], " ");
    let mut names: Vec<_> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        expanded = expanded
            .replace(&format!("${{{name}}}"), &vars[name])
            .replace(&format!("${name}"), &vars[name]);
    }
    expanded.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "#!/usr/bin/env bash\nset -e\nVIP=192.168.1.200\n\
        RIP=192.168.1.21\narptables -A IN -d $VIP -j DROP\n\
        arptables -A OUT -s $VIP -j mangle --mangle-ip-s $RIP\n\
        echo \"ifconfig eth0:1 $VIP up\" >> /etc/rc.local\n";

    #[test]
    fn reads_the_seed_script() {
        let mut report = Report::default();
        let s = parse(Path::new("rs01.sh"), SEED, &mut report);
        assert!(report.items.is_empty(), "{report}");
        let vips: Vec<_> = s.vips.iter().map(|v| v.value.to_string()).collect();
        assert_eq!(vips, ["192.168.1.200"]);
        assert_eq!(s.rip.unwrap().value.to_string(), "192.168.1.21");
        let interface = s.interface.unwrap();
        assert_eq!((interface.value.as_str(), interface.pos.line), ("eth0", 7));
    }

    #[test]
    fn vip_on_lo_gives_no_interface() {
        let text = "SNS_VIP=10.0.0.100\n/sbin/ifconfig lo:0 $SNS_VIP \
                    netmask 255.255.255.255 up\n";
        let s = parse(Path::new("rs.sh"), text, &mut Report::default());
        assert_eq!(s.vips.len(), 1);
        assert!(s.rip.is_none() && s.interface.is_none());
    }
}
