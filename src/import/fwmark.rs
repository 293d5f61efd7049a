//! `--fwmark-rules`: the mangle rules that give keepalived's `virtual_server
//! fwmark N` its packets, read into the VIP, protocol and ports each mark
//! stands for — what an inventory writes as a port group (`ports:`).
//!
//! keepalived.conf names only the mark; which packets carry it is in the
//! director's firewall, written by hand. Two forms are read, line by line:
//!
//! * iptables, as `iptables-save` prints it (`*mangle`, then `-A
//!   PREROUTING -d 10.0.0.100/32 -p tcp -m multiport --dports 80,443 -j
//!   MARK --set-mark 1`) or as a command (`iptables -t mangle -A …`);
//! * nftables rules that end in `meta mark set N` (`ip daddr 10.0.0.100
//!   tcp dport { 80, 443 } meta mark set 0x1`), listed or as `nft add rule`.
//!
//! Every other line (other targets, other tables, comments) is skipped
//! unread, never quoted: the file may be anything. A rule that sets a mark
//! but says more than a port group can (a source, a negation, a subnet, a
//! match of another kind, a partial mask) makes its mark *refused*: the
//! service using it is not imported, and the error names the line, the
//! column and why. So does a mark set for two VIPs. What is read here is
//! checked against the keepalived.conf by `keepalived::lvs`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Pos, Report};
use crate::inventory::{PortSpan, Protocol, SpanError};
use crate::util::files;

/// The largest rules file read: a director's whole `iptables-save` is
/// rarely over a few hundred kilobytes.
pub(crate) const RULES_MAX: u64 = 1 << 20;

/// Every mark the rules files set, with what it marks.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// The files read, for messages.
    files: Vec<PathBuf>,
    /// By mark.
    marks: BTreeMap<u32, Marked>,
}

/// What one mark stands for.
#[derive(Debug, Clone)]
enum Marked {
    /// Read: one VIP, and per protocol its ports.
    Group(Group),
    /// Set by a rule that could not be read, or for a second VIP: where,
    /// and why.
    Refused(Pos, String),
}

/// The packets one mark is set on: one VIP, per protocol its ports
/// (sorted, neighbours joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// The destination address every rule of the mark names.
    pub vip: IpAddr,
    /// The first rule that set the mark.
    pub at: Pos,
    /// TCP first, then UDP; only those the rules name.
    pub protocols: Vec<(Protocol, Vec<PortSpan>)>,
}

/// What became of a mark asked for.
#[derive(Debug)]
pub(crate) enum Lookup<'m> {
    /// No rule sets it.
    Unset,
    /// Its rules were read.
    Group(&'m Group),
    /// A rule that sets it was refused, here, for this reason.
    Refused(&'m Pos, &'m str),
}

impl Marks {
    /// Read every rules file; problems go to `report`, at the file's line
    /// and column.
    pub(crate) fn read(paths: &[PathBuf], report: &mut Report) -> Self {
        let mut marks = Marks::default();
        for path in paths {
            match files::read_regular(path, RULES_MAX) {
                Ok(text) => marks.add_text(path, &text, report),
                Err(e) => {
                    let bound = match e.kind() {
                        std::io::ErrorKind::FileTooLarge => {
                            format!(
                                " (a rules file is read up to {RULES_MAX} bytes)"
                            )
                        }
                        _ => String::new(),
                    };
                    report.error(
                        None,
                        format!(
                            "--fwmark-rules {}: {e}{bound}",
                            path.display()
                        ),
                    );
                }
            }
        }
        marks
    }

    /// The files read, as the user named them: `a.rules, b.rules`.
    pub(crate) fn files(&self) -> String {
        let names: Vec<String> =
            self.files.iter().map(|f| f.display().to_string()).collect();
        names.join(", ")
    }

    /// What mark `mark` stands for.
    pub(crate) fn lookup(&self, mark: u32) -> Lookup<'_> {
        match self.marks.get(&mark) {
            None => Lookup::Unset,
            Some(Marked::Group(g)) => Lookup::Group(g),
            Some(Marked::Refused(at, why)) => Lookup::Refused(at, why),
        }
    }

    /// Read one file's text (`path` for positions).
    pub(crate) fn add_text(
        &mut self,
        path: &Path,
        text: &str,
        report: &mut Report,
    ) {
        self.files.push(path.to_owned());
        let file: Arc<Path> = path.into();
        let mut context = Context::default();
        for (n, line) in text.lines().enumerate() {
            let line_no = u32::try_from(n + 1).unwrap_or(u32::MAX);
            let at = |col: usize| Pos {
                file: file.clone(),
                line: line_no,
                col: u32::try_from(col).unwrap_or(u32::MAX),
            };
            let words = words(line);
            match rule(&words, &mut context) {
                Read::Skip => {}
                Read::Rule(r) => self.add(r, at(1)),
                Read::Refused(Some(mark), col, why) => {
                    self.refuse(mark, at(col), why)
                }
                Read::Refused(None, col, why) => report.error(
                    Some(&at(col)),
                    format!(
                        "a rule that sets a mark could not be read: {why} — \
                         the import cannot tell which service it serves"
                    ),
                ),
            }
        }
    }

    fn add(&mut self, rule: Rule, at: Pos) {
        let entry = self.marks.entry(rule.mark).or_insert_with(|| {
            Marked::Group(Group {
                vip: rule.vip,
                at: at.clone(),
                protocols: Vec::new(),
            })
        });
        let Marked::Group(group) = entry else { return };
        if group.vip != rule.vip {
            let why = format!(
                "mark {} is set here for {} and for {} at {}: keepalived's \
                 fwmark service would balance both VIPs as one, a port \
                 group is one VIP's — give each VIP its own mark and \
                 virtual_server",
                rule.mark,
                rule.vip,
                group.vip,
                group.at.relative_to(&at)
            );
            *entry = Marked::Refused(at, why);
            return;
        }
        let spans =
            match group.protocols.iter().position(|p| p.0 == rule.protocol) {
                Some(i) => &mut group.protocols[i].1,
                None => {
                    group.protocols.push((rule.protocol, Vec::new()));
                    group.protocols.sort_by_key(|p| p.0 == Protocol::Udp);
                    let i = group
                        .protocols
                        .iter()
                        .position(|p| p.0 == rule.protocol)
                        .expect("just pushed");
                    &mut group.protocols[i].1
                }
            };
        spans.extend(rule.ports);
        *spans = joined(std::mem::take(spans));
    }

    fn refuse(&mut self, mark: u32, at: Pos, why: String) {
        let first_refusal =
            !matches!(self.marks.get(&mark), Some(Marked::Refused(..)));
        if first_refusal {
            self.marks.insert(mark, Marked::Refused(at, why));
        }
    }
}

/// Spans sorted, overlapping and neighbouring ones joined: the ports
/// marked, however many rules list them.
fn joined(mut spans: Vec<PortSpan>) -> Vec<PortSpan> {
    spans.sort();
    let mut out: Vec<PortSpan> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if u32::from(s.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(s.last)
            }
            _ => out.push(s),
        }
    }
    out
}

/// One mark rule, read whole.
#[derive(Debug, PartialEq, Eq)]
struct Rule {
    mark: u32,
    vip: IpAddr,
    protocol: Protocol,
    ports: Vec<PortSpan>,
}

/// What a line is.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// Not a rule that sets a mark on arriving packets.
    Skip,
    Rule(Rule),
    /// A mark rule that says what a port group cannot, at a column (from
    /// 1), with the mark when it could be read.
    Refused(Option<u32>, usize, String),
}

/// Where a line sits, from the lines before it: the iptables table
/// (`*mangle`), the nftables chain's name and hook.
#[derive(Debug, Default)]
struct Context {
    table: Option<String>,
    chain: Option<String>,
    hook: Option<String>,
}

/// A word of a line and the column (in characters, from 1) it starts at.
/// Quotes group words (`--comment "a b"`) and are dropped.
type Word<'l> = (usize, &'l str);

fn words(line: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    let mut quote = None;
    for (col, (i, c)) in line.char_indices().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                if let Some((col, s)) = start.take() {
                    out.push((col, &line[s..i]));
                }
                quote = None;
            }
            (Some(_), _) => {}
            (None, '"' | '\'') if start.is_none() => {
                quote = Some(c);
                start = Some((col + 1, i + 1));
            }
            (None, c) if c.is_whitespace() || c == ';' => {
                if let Some((col, s)) = start.take() {
                    out.push((col, &line[s..i]));
                }
            }
            (None, _) => {
                start.get_or_insert((col + 1, i));
            }
        }
    }
    if let Some((col, s)) = start {
        out.push((col, &line[s..]));
    }
    out
}

/// Read one line.
fn rule(words: &[Word<'_>], context: &mut Context) -> Read {
    let Some(&(_, first)) = words.first() else { return Read::Skip };
    if let Some(table) = first.strip_prefix('*') {
        context.table = Some(table.to_owned());
        return Read::Skip;
    }
    let command = first.rsplit('/').next().unwrap_or(first);
    if first.starts_with('-') || command.ends_with("tables") {
        return iptables(words, context);
    }
    nft(words, context)
}

/// Whether `word` may be quoted back in a message: an option or keyword
/// of a rule, not a word of some other file given by mistake.
fn shown(word: &str) -> bool {
    (1..=32).contains(&word.len())
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
}

/// `word` in backquotes when it may be shown, else "a word".
fn quoted(word: &str) -> String {
    match shown(word) {
        true => format!("`{word}`"),
        false => "(a word not shown)".to_owned(),
    }
}

/// Why a negated match (`!`, `!=`) is refused, in either syntax.
const NEGATED: &str = "a negated match: a port group lists what it serves";

/// Why a word no port group has is refused, in either syntax.
fn not_read(word: &str) -> String {
    format!(
        "{} is not read: a port group is a VIP, a protocol and ports, \
         nothing more",
        quoted(word)
    )
}

/// Why a source match is refused, in either syntax.
fn from_source(source: &str) -> String {
    format!(
        "only packets from {} are marked: a port group serves every client",
        quoted(source)
    )
}

/// A mark: decimal or `0x` hexadecimal.
fn number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The chains whose marks reach IPVS on arriving packets; other built-in
/// chains' marks never do, and a user chain's packets depend on the jumps
/// to it.
enum Chain {
    Arriving,
    Elsewhere,
    User,
}

fn chain_kind(name: &str) -> Chain {
    match name.to_ascii_lowercase().as_str() {
        "prerouting" | "input" => Chain::Arriving,
        "output" | "postrouting" | "forward" => Chain::Elsewhere,
        _ => Chain::User,
    }
}

/// What a mark rule's matches said so far.
#[derive(Default)]
struct Matches {
    vip: Option<IpAddr>,
    protocol: Option<Protocol>,
    ports: Option<Vec<PortSpan>>,
}

impl Matches {
    /// The rule, or why it is no port group; `col` is the mark's column.
    fn rule(self, mark: u32, col: usize, how: Syntax) -> Read {
        let refused = |why: String| Read::Refused(Some(mark), col, why);
        let Some(vip) = self.vip else {
            return refused(format!(
                "mark {mark} is set on packets to any address: a port group \
                 is one VIP's — add {}",
                how.daddr
            ));
        };
        let Some(protocol) = self.protocol else {
            return refused(format!(
                "mark {mark} is set on every protocol to {vip}: a port group \
                 is TCP or UDP — add {}",
                how.protocol
            ));
        };
        let Some(ports) = self.ports else {
            return refused(format!(
                "mark {mark} is set on every {} port of {vip}: a port group \
                 lists its ports — add {}",
                format!("{protocol:?}").to_lowercase(),
                how.ports
            ));
        };
        Read::Rule(Rule { mark, vip, protocol, ports })
    }
}

/// How each syntax spells what a rule lacks, for the messages.
#[derive(Clone, Copy)]
struct Syntax {
    daddr: &'static str,
    protocol: &'static str,
    ports: &'static str,
}

const IPTABLES: Syntax = Syntax {
    daddr: "`-d VIP/32`",
    protocol: "`-p tcp` or `-p udp`",
    ports: "`--dport PORT` or `-m multiport --dports PORT,PORT`",
};

const NFT: Syntax = Syntax {
    daddr: "`ip daddr VIP`",
    protocol: "`tcp dport …` or `udp dport …`",
    ports: "`tcp dport { PORT, PORT }`",
};

/// An address with an optional full-length prefix (`10.0.0.1/32`,
/// `10.0.0.1/255.255.255.255`); the reason when it is no one address.
fn address(s: &str) -> Result<IpAddr, String> {
    if s.contains(',') {
        return Err("several addresses: a port group is one VIP's — \
                    give each VIP its own mark"
            .to_owned());
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return Err(format!("{} is not an IP address", quoted(s)));
    };
    let full = if ip.is_ipv4() { 32 } else { 128 };
    let whole = match prefix {
        None => true,
        Some(p) => p.parse::<u8>().ok() == Some(full) || p == "255.255.255.255",
    };
    match whole {
        true => Ok(ip),
        false => Err(format!(
            "{} is a subnet: a port group is one VIP's — mark `{ip}/{full}`",
            quoted(s)
        )),
    }
}

/// `80`, or a range with `sep` (`8000:8100` for iptables, `8000-8100`
/// for nft).
fn span(s: &str, sep: char) -> Result<PortSpan, String> {
    PortSpan::parse_with(s, sep).map_err(|e| match e {
        SpanError::NotAPort => format!("{} is not a port 1–65535", quoted(s)),
        SpanError::Backwards(_) => format!("{} runs backwards", quoted(s)),
    })
}

fn protocol(s: &str) -> Option<Protocol> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Some(Protocol::Tcp),
        "udp" | "17" => Some(Protocol::Udp),
        _ => None,
    }
}

/// An iptables rule, saved or as a command. Only `-j MARK` rules in the
/// mangle table are read; everything else is skipped.
fn iptables(words: &[Word<'_>], context: &Context) -> Read {
    let is = |w: &str, names: &[&str]| names.contains(&w);
    // Is it a mark rule at all, and which mark? Found first, so that a
    // refusal can name the mark.
    let target = words
        .windows(2)
        .position(|w| is(w[0].1, &["-j", "--jump"]) && w[1].1 == "MARK");
    let Some(target) = target else { return Read::Skip };
    let appends = words.iter().any(|w| {
        is(w.1, &["-A", "--append", "-I", "--insert", "-R", "--replace"])
    });
    if !appends {
        return Read::Skip;
    }
    let setter = words[target..]
        .windows(2)
        .find(|w| is(w[0].1, &["--set-mark", "--set-xmark"]));
    let Some([(col, _), (_, value)]) = setter.map(|w| [w[0], w[1]]) else {
        let (col, _) = words[target];
        return Read::Refused(
            None,
            col,
            "MARK without `--set-mark` or `--set-xmark`: the mark it leaves \
             depends on the mark before"
                .to_owned(),
        );
    };
    let (mark, mask) = match value.split_once('/') {
        Some((v, m)) => (number(v), number(m)),
        None => (number(value), Some(u32::MAX)),
    };
    let Some(mark) = mark else {
        return Read::Refused(
            None,
            col,
            "what follows it is not a mark (a number)".to_owned(),
        );
    };
    if mask != Some(u32::MAX) {
        return Read::Refused(
            Some(mark),
            col,
            format!(
                "{} sets some bits of the mark only: the mark a packet ends \
                 with depends on other rules — set the whole mark \
                 (`--set-mark {mark}`)",
                quoted(value)
            ),
        );
    }
    if mark == 0 {
        return Read::Skip;
    }
    let mut table = context.table.clone().unwrap_or_else(|| "filter".into());
    let mut m = Matches::default();
    let refused = |col: usize, why: String| Read::Refused(Some(mark), col, why);
    let mut i = 0;
    // The command word (`iptables`, `/sbin/ip6tables`), when there is one.
    if words.first().is_some_and(|w| !w.1.starts_with('-')) {
        i = 1;
    }
    // `iptables-save -c`: `[packets:bytes]` first.
    if words.get(i).is_some_and(|w| w.1.starts_with('[')) {
        i += 1;
    }
    while i < words.len() {
        let (col, w) = words[i];
        let value = words.get(i + 1).map_or("", |a| a.1);
        // Every option read takes one value; `-I CHAIN N` may take two.
        let mut takes = 2;
        match w {
            "-t" | "--table" => table = value.to_owned(),
            "-A" | "--append" | "-R" | "--replace" | "-I" | "--insert" => {
                match chain_kind(value) {
                    Chain::Arriving => {}
                    Chain::Elsewhere => return Read::Skip,
                    Chain::User => {
                        return refused(
                            col,
                            format!(
                                "the rule is in the chain {}: which packets \
                                 reach it depends on the jumps to it — \
                                 write it in PREROUTING",
                                quoted(value)
                            ),
                        );
                    }
                }
                // `-I CHAIN N`: a rule number may follow.
                let numbered = words
                    .get(i + 2)
                    .is_some_and(|n| n.1.bytes().all(|b| b.is_ascii_digit()));
                if w == "-I" || w == "--insert" {
                    takes += usize::from(numbered);
                }
            }
            "-d" | "--destination" | "--dst" => match address(value) {
                Ok(ip) => m.vip = Some(ip),
                Err(why) => return refused(col, why),
            },
            "-p" | "--protocol" => match protocol(value) {
                Some(p) => m.protocol = Some(p),
                None => {
                    return refused(
                        col,
                        format!(
                            "the protocol {} is not TCP or UDP",
                            quoted(value)
                        ),
                    );
                }
            },
            "-m" | "--match" => {
                if !is(value, &["tcp", "udp", "multiport", "comment"]) {
                    return refused(
                        col,
                        format!(
                            "the match {}: a port group is a VIP, a \
                             protocol and ports, nothing more",
                            quoted(value)
                        ),
                    );
                }
            }
            "--dport"
            | "--destination-port"
            | "--dports"
            | "--destination-ports" => {
                let spans: Result<Vec<_>, _> =
                    value.split(',').map(|s| span(s, ':')).collect();
                match spans {
                    Ok(s) => m.ports.get_or_insert_with(Vec::new).extend(s),
                    Err(why) => return refused(col, why),
                }
            }
            "-i" | "--in-interface" | "--comment" => {}
            "-j" | "--jump" => {}
            "--set-mark" | "--set-xmark" => {}
            "-s" | "--source" | "--src" => {
                return refused(col, from_source(value));
            }
            "!" => {
                return refused(col, NEGATED.to_owned());
            }
            other => {
                return refused(col, not_read(other));
            }
        }
        i += takes;
    }
    if table != "mangle" {
        return refused(
            1,
            format!(
                "MARK is a target of the mangle table, not of {}",
                quoted(&table)
            ),
        );
    }
    m.rule(mark, words[target].0, IPTABLES)
}

/// An nftables line: chain headers are remembered (for their hook), and a
/// rule ending in `meta mark set N` (or `mark set N`) is read.
fn nft(words: &[Word<'_>], context: &mut Context) -> Read {
    let w = |i: usize| words.get(i).map_or("", |w| w.1);
    if w(0) == "chain" || w(0) == "}" {
        context.chain = (w(0) == "chain").then(|| w(1).to_owned());
        context.hook = None;
        return Read::Skip;
    }
    if let Some(i) = words.iter().position(|x| x.1 == "hook") {
        context.hook = Some(w(i + 1).to_owned());
        return Read::Skip;
    }
    let Some(set) =
        words.windows(2).position(|p| p[0].1 == "mark" && p[1].1 == "set")
    else {
        return Read::Skip;
    };
    let (col, value) =
        words.get(set + 2).copied().unwrap_or((words[set].0, ""));
    let Some(mark) = number(value) else {
        return Read::Refused(
            None,
            col,
            "what follows `mark set` is not a mark (a number)".to_owned(),
        );
    };
    if mark == 0 {
        return Read::Skip;
    }
    let refused = |col: usize, why: String| Read::Refused(Some(mark), col, why);
    // What follows the mark: a counter or a comment only.
    for &(col, extra) in &words[(set + 3).min(words.len())..] {
        match extra {
            "comment" => break,
            "counter" => {}
            _ => {
                return refused(
                    col,
                    format!("{} after the mark is not read", quoted(extra)),
                );
            }
        }
    }
    let mut i = 0;
    // `nft add rule FAMILY TABLE CHAIN …` or `add rule …`.
    if w(0) == "nft" {
        i = 1;
    }
    let mut chain = context.chain.clone();
    let mut hook = context.hook.clone();
    if matches!(w(i), "add" | "insert") && w(i + 1) == "rule" {
        // A command names its chain; no listed chain's hook applies.
        chain = Some(w(i + 4).to_owned());
        hook = None;
        i += 5;
    }
    let kind = match (&hook, &chain) {
        (Some(hook), _) => chain_kind(hook),
        (None, Some(name)) => chain_kind(name),
        (None, None) => Chain::Arriving,
    };
    match kind {
        Chain::Arriving => {}
        Chain::Elsewhere => return Read::Skip,
        Chain::User => {
            let name = chain.unwrap_or_default();
            return refused(
                1,
                format!(
                    "the rule is in the chain {}, which has no hook: which \
                     packets reach it depends on the jumps to it — write \
                     it in a chain of `hook prerouting`",
                    quoted(&name)
                ),
            );
        }
    }
    let mut m = Matches::default();
    let mut l4 = None;
    let end = match set.checked_sub(1).map(w) {
        Some("meta") => set - 1,
        _ => set,
    };
    while i < end {
        let (col, word) = words[i];
        match (word, w(i + 1)) {
            ("ip" | "ip6", "daddr") => {
                match address(w(i + 2)) {
                    Ok(ip) => m.vip = Some(ip),
                    Err(why) => return refused(col, why),
                }
                i += 3;
            }
            ("ip" | "ip6", "saddr") => {
                return refused(col, from_source(w(i + 2)));
            }
            ("meta", "l4proto") | ("ip", "protocol") => {
                match protocol(w(i + 2)) {
                    Some(p) => l4 = Some(p),
                    None => {
                        return refused(
                            col,
                            format!(
                                "the protocol {} is not TCP or UDP",
                                quoted(w(i + 2))
                            ),
                        );
                    }
                }
                i += 3;
            }
            ("tcp" | "udp" | "th", "dport") => {
                let proto = match word {
                    "th" => l4,
                    p => protocol(p),
                };
                let Some(proto) = proto else {
                    return refused(
                        col,
                        "`th dport` without `meta l4proto tcp` or `udp`"
                            .to_owned(),
                    );
                };
                m.protocol = Some(proto);
                let (spans, next) = match nft_ports(words, i + 2) {
                    Ok(read) => read,
                    Err(why) => return refused(col, why),
                };
                m.ports.get_or_insert_with(Vec::new).extend(spans);
                i = next;
            }
            ("iifname" | "iif", _) => i += 2,
            ("counter", _) => i += 1,
            ("!=", _) => {
                return refused(col, NEGATED.to_owned());
            }
            (other, _) => {
                return refused(col, not_read(other));
            }
        }
    }
    if m.protocol.is_none() {
        m.protocol = l4;
    }
    m.rule(mark, words[set].0, NFT)
}

/// The ports of `dport` at word `i`: `80`, `8000-8100` or a set `{ 80,
/// 443 }` (its braces and commas in any spacing); the spans and the index
/// of the word after them.
fn nft_ports(
    words: &[Word<'_>],
    i: usize,
) -> Result<(Vec<PortSpan>, usize), String> {
    let Some(&(_, first)) = words.get(i) else {
        return Err("`dport` without ports".to_owned());
    };
    if !first.starts_with('{') {
        return Ok((vec![span(first, '-')?], i + 1));
    }
    let mut spans = Vec::new();
    let mut j = i;
    while let Some(&(_, w)) = words.get(j) {
        j += 1;
        let closes = w.ends_with('}');
        for part in w.split([',', '{', '}']).filter(|p| !p.is_empty()) {
            spans.push(span(part, '-')?);
        }
        if closes {
            return Ok((spans, j));
        }
    }
    Err("a set of ports without its closing `}`".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Marks, Vec<String>) {
        let mut report = Report::default();
        let mut marks = Marks::default();
        marks.add_text(Path::new("r"), text, &mut report);
        (marks, report.items.iter().map(ToString::to_string).collect())
    }

    fn group(marks: &Marks, mark: u32) -> (String, Vec<(Protocol, String)>) {
        let Lookup::Group(g) = marks.lookup(mark) else {
            panic!("mark {mark}: {:?}", marks.lookup(mark));
        };
        let protocols = g
            .protocols
            .iter()
            .map(|(p, s)| {
                let s: Vec<String> =
                    s.iter().map(ToString::to_string).collect();
                (*p, s.join(","))
            })
            .collect();
        (g.vip.to_string(), protocols)
    }

    fn refusal(marks: &Marks, mark: u32) -> String {
        match marks.lookup(mark) {
            Lookup::Refused(at, why) => format!("{at}: {why}"),
            other => panic!("mark {mark} not refused: {other:?}"),
        }
    }

    /// The forms the issue names, saved and as commands, each read to the
    /// same VIP, protocol and ports; rules of one mark add up.
    #[test]
    fn saved_and_command_rules_are_read() {
        let (marks, errors) = read(
            "# Generated by iptables-save\n*mangle\n\
             :PREROUTING ACCEPT [0:0]\n\
             -A PREROUTING -d 10.0.0.100/32 -p tcp -m multiport --dports \
             80,443 -j MARK --set-mark 1\n\
             -A PREROUTING -d 10.0.0.100/32 -p tcp -m tcp --dport 21 -j MARK \
             --set-xmark 0x2/0xffffffff\n\
             -A PREROUTING -d 10.0.0.100/32 -p tcp -m tcp --dport 20 -j MARK \
             --set-xmark 0x2/0xffffffff\n\
             -A PREROUTING -d 10.0.0.101/32 -p udp -m multiport --dports \
             8000:8100 -m comment --comment \"a b\" -j MARK --set-mark 3\n\
             COMMIT\n*filter\n-A INPUT -j ACCEPT\nCOMMIT\n\
             iptables -t mangle -A PREROUTING -d 10.0.0.102 -p udp --dport \
             53 -j MARK --set-mark 4\n\
             iptables -t mangle -A PREROUTING -d 10.0.0.102 -p tcp --dport \
             53 -j MARK --set-mark 4\n",
        );
        assert_eq!(errors, Vec::<String>::new());
        let tcp = |s: &str| (Protocol::Tcp, s.to_owned());
        let udp = |s: &str| (Protocol::Udp, s.to_owned());
        assert_eq!(
            group(&marks, 1),
            ("10.0.0.100".into(), vec![tcp("80,443")])
        );
        assert_eq!(group(&marks, 2), ("10.0.0.100".into(), vec![tcp("20-21")]));
        assert_eq!(
            group(&marks, 3),
            ("10.0.0.101".into(), vec![udp("8000-8100")])
        );
        assert_eq!(
            group(&marks, 4),
            ("10.0.0.102".into(), vec![tcp("53"), udp("53")])
        );
        assert!(matches!(marks.lookup(5), Lookup::Unset));
    }

    #[test]
    fn nft_rules_are_read() {
        let (marks, errors) = read(
            "table ip mangle {\n\tchain prerouting {\n\t\ttype filter hook \
             prerouting priority mangle; policy accept;\n\
             \t\tip daddr 10.0.0.100 tcp dport { 80, 443 } meta mark set \
             0x00000001\n\
             \t\tip daddr 10.0.0.100 meta l4proto udp th dport 8000-8100 \
             counter mark set 2\n\t}\n\tchain output {\n\t\ttype filter \
             hook output priority mangle;\n\t\tip daddr 10.9.9.9 tcp dport \
             1 meta mark set 1\n\t}\n}\n\
             nft add rule ip6 mangle prerouting ip6 daddr 2001:db8::1 tcp \
             dport {80,443} meta mark set 3\n",
        );
        assert_eq!(errors, Vec::<String>::new());
        let (vip, p) = group(&marks, 1);
        assert_eq!((vip.as_str(), p[0].1.as_str()), ("10.0.0.100", "80,443"));
        let (_, p) = group(&marks, 2);
        assert_eq!(p, [(Protocol::Udp, "8000-8100".to_owned())]);
        assert_eq!(group(&marks, 3).0, "2001:db8::1");
    }

    /// Each refusal at its line and column, with why; the mark is refused
    /// even when another rule of it was read.
    #[test]
    fn rules_a_port_group_cannot_be_are_refused_where_they_stand() {
        let (marks, errors) = read(
            "*mangle\n\
             -A PREROUTING -d 10.0.0.1/32 -p tcp --dport 80 -j MARK --set-mark 1\n\
             -A PREROUTING -d 10.0.0.2/32 -p tcp --dport 80 -j MARK --set-mark 1\n\
             -A PREROUTING -s 192.0.2.0/24 -d 10.0.0.3/32 -p tcp --dport 80 -j MARK --set-mark 2\n\
             -A PREROUTING -d 10.0.0.0/24 -p tcp --dport 80 -j MARK --set-mark 3\n\
             -A PREROUTING -d 10.0.0.4/32 -p tcp --dport 80 -j MARK --set-xmark 0x4/0xff\n\
             -A PREROUTING -d 10.0.0.5/32 -p tcp -j MARK --set-mark 5\n\
             -A WEB -d 10.0.0.6/32 -p tcp --dport 80 -j MARK --set-mark 6\n\
             -A PREROUTING -d 10.0.0.7/32 -p tcp -m state --state NEW --dport 80 -j MARK --set-mark 7\n\
             -A PREROUTING -d 10.0.0.8/32 -p tcp --dport 80 -j MARK --set-mark root:$y$s3cr3t\n\
             -A OUTPUT -d 10.0.0.9/32 -p tcp --dport 80 -j MARK --set-mark 9\n",
        );
        assert_eq!(refusal(&marks, 1).split(": ").next(), Some("r:3:1"));
        assert!(
            refusal(&marks, 1)
                .contains("for 10.0.0.2 and for 10.0.0.1 at line 2")
        );
        assert!(
            refusal(&marks, 2)
                .starts_with("r:4:15: only packets from `192.0.2.0/24`")
        );
        assert!(
            refusal(&marks, 3).starts_with("r:5:15: `10.0.0.0/24` is a subnet")
        );
        assert!(
            refusal(&marks, 4).starts_with("r:6:56: `0x4/0xff` sets some bits")
        );
        assert!(refusal(&marks, 5).contains("every tcp port of 10.0.0.5"));
        assert!(
            refusal(&marks, 6)
                .starts_with("r:8:1: the rule is in the chain `WEB`")
        );
        assert!(refusal(&marks, 7).starts_with("r:9:37: the match `state`"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("r:10:"), "{errors:?}");
        assert!(!errors[0].contains("s3cr3t"), "{errors:?}");
        assert!(matches!(marks.lookup(9), Lookup::Unset), "OUTPUT is skipped");
    }

    /// The rules file is anyone's: every prefix of rules of both forms
    /// (cut mid-word, mid-quote, mid-set) is read without a panic.
    #[test]
    fn every_truncation_of_rules_is_read_without_panic() {
        let text = "*mangle\n-A PREROUTING -d 10.0.0.1/32 -p tcp -m \
                    multiport --dports 80,8000:8100 -m comment --comment \
                    \"x y\" -j MARK --set-xmark 0x1/0xffffffff\n\
                    iptables -t mangle -I PREROUTING 1 -d ::1 -p udp \
                    --dport 53 -j MARK --set-mark 2\nchain p {\n type \
                    filter hook prerouting;\n ip daddr 10.0.0.1 meta \
                    l4proto tcp th dport { 1-2, 3 } counter meta mark set \
                    3 comment \"é\"\n}\n";
        for end in (0..=text.len()).filter(|&e| text.is_char_boundary(e)) {
            read(&text[..end]);
        }
        let (whole, errors) = read(text);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(group(&whole, 2).0, "::1");
        assert_eq!(group(&whole, 3).1, [(Protocol::Tcp, "1-3".to_owned())]);
    }

    #[test]
    fn neighbouring_spans_are_joined() {
        let s = |a, b| PortSpan { first: a, last: b };
        assert_eq!(
            joined(vec![s(443, 443), s(80, 80), s(81, 90), s(85, 85)]),
            [s(80, 90), s(443, 443)]
        );
        assert_eq!(joined(vec![s(65535, 65535), s(1, 65534)]), [s(1, 65535)]);
    }
}
