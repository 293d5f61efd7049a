//! The codemap's rules (ARCHITECTURE.md), checked on the source itself:
//! which module may import which, and no import cycles between files.
//!
//! Each file under `src/` is a node named by its module path
//! (`src/agent/vrrp/fsm.rs` is `agent::vrrp::fsm`, a `mod.rs` names its
//! folder). Every `crate::…`, `super::…` and `self::…` path outside the
//! file's `#[cfg(test)]` module is an edge to the longest module it names.
//! `mod x;` declarations are not imports: a parent owning a child is not
//! the parent depending on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path → the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`, as (module path, text).
fn sources(dir: &Path, prefix: &[String], out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("reading src/")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut p = prefix.to_vec();
            p.push(name);
            sources(&path, &p, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut p = prefix.to_vec();
            if !matches!(name.as_str(), "mod" | "lib" | "main") {
                p.push(name);
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((p.join("::"), text));
        }
    }
}

/// `text` without its unit-test module (by convention the file's last
/// item, private or shared with other files' tests) and without
/// comments, which may name modules in prose.
fn code(text: &str) -> String {
    let test_module =
        ["#[cfg(test)]\nmod tests", "#[cfg(test)]\npub(crate) mod tests"]
            .iter()
            .find_map(|m| text.find(m));
    let text = match test_module {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths `text` names: every `use` tree expanded (`use a::{b, c::d}`
/// is `a::b` and `a::c::d`), and every path written inline in the code
/// (`super::log(…)`, `fsm::master_down_interval(…)`). Inline paths in a
/// `pub use` line are skipped too, with the line.
fn named_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut offset = 0;
    for line in text.lines() {
        let start = offset;
        offset += line.len() + 1;
        // A `pub use` is a facade over the module's own children, not
        // something its code depends on: only plain `use` counts.
        let Some(tree) = line.trim_start().strip_prefix("use ") else {
            continue;
        };
        let after = &text[start + (line.len() - tree.len())..];
        if let Some(end) = after.find(';') {
            let tree: String =
                after[..end].chars().filter(|c| !c.is_whitespace()).collect();
            expand("", &tree, &mut found);
        }
    }
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("pub"))
        .collect::<Vec<_>>()
        .join("\n");
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts = (c.is_ascii_alphabetic() || c == '_')
            && (i == 0
                || !(chars[i - 1].is_alphanumeric()
                    || chars[i - 1] == '_'
                    || chars[i - 1] == ':'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len()
            && (chars[j].is_alphanumeric()
                || chars[j] == '_'
                || chars[j] == ':')
        {
            j += 1;
        }
        let path: String = chars[i..j].iter().collect();
        if path.contains("::") {
            found.push(path.trim_end_matches(':').to_owned());
        }
        i = j;
    }
    found
}

/// Expand one `use` tree under `prefix`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim_start_matches("::");
    match tree.find('{') {
        None => {
            let item = tree.split(" as ").next().unwrap_or(tree);
            let item = item.split("as").next().unwrap_or(item);
            out.push(
                format!("{prefix}{item}").trim_end_matches("::").to_owned(),
            );
        }
        Some(open) => {
            let head = format!("{prefix}{}", &tree[..open]);
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut from = 0;
            for (k, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&head, &inner[from..k], out);
                        from = k + 1;
                    }
                    _ => {}
                }
            }
            if from < inner.len() {
                expand(&head, &inner[from..], out);
            }
        }
    }
}

/// `path` as seen from module `me` made absolute (`crate::…` dropped).
fn absolute(me: &str, path: &str) -> String {
    let mut base: Vec<&str> =
        if me.is_empty() { vec![] } else { me.split("::").collect() };
    let mut parts = path.split("::").filter(|s| !s.is_empty()).peekable();
    match parts.peek() {
        Some(&"crate") => {
            base.clear();
            parts.next();
        }
        Some(&"self") => {
            parts.next();
        }
        // A path relative to `me`: a child module, an item in scope or
        // another crate; `module_of` keeps only what names a module.
        _ => {}
    }
    for p in parts {
        if p == "super" {
            base.pop();
        } else {
            base.push(p);
        }
    }
    base.join("::")
}

/// The longest known module that `path` names, if any.
fn module_of<'a>(modules: &'a BTreeSet<String>, path: &str) -> Option<&'a str> {
    let mut parts: Vec<&str> = path.split("::").collect();
    while !parts.is_empty() {
        if let Some(m) = modules.get(&parts.join("::")) {
            return Some(m);
        }
        parts.pop();
    }
    None
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &[], &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(m, _)| m.clone())
        .filter(|m| !m.is_empty())
        .collect();
    let mut g = Graph::new();
    for (me, text) in &files {
        let edges = g.entry(me.clone()).or_default();
        for p in named_paths(&code(text)) {
            let first = p.split("::").next().unwrap_or_default();
            let rooted = matches!(first, "crate" | "super" | "self");
            let child = format!("{me}::{first}");
            if !rooted && !modules.contains(child.trim_start_matches("::")) {
                continue;
            }
            let abs = absolute(me, &p);
            if let Some(m) = module_of(&modules, &abs)
                && m != me
            {
                edges.insert(m.to_owned());
            }
        }
    }
    g
}

/// Whether module `m` is `top` or inside it.
fn within(m: &str, top: &str) -> bool {
    m == top || m.starts_with(&format!("{top}::"))
}

/// Nothing below the command line imports it: commands define their own
/// arguments and `cli` embeds them.
#[test]
fn only_main_imports_cli() {
    let bad: Vec<_> = graph()
        .into_iter()
        .filter(|(m, deps)| !m.is_empty() && m != "cli" && deps.contains("cli"))
        .map(|(m, _)| m)
        .collect();
    assert!(bad.is_empty(), "these modules import cli: {bad:?}");
}

/// The agent runs on every host and shares with the controller only the
/// inventory's types and `util`.
#[test]
fn the_agent_imports_no_controller_module() {
    let controller = ["plan", "apply", "transport", "lab", "import", "cli"];
    let mut bad = Vec::new();
    for (m, deps) in graph() {
        if !within(&m, "agent") {
            continue;
        }
        for d in deps {
            if controller.iter().any(|c| within(&d, c)) {
                bad.push(format!("{m} -> {d}"));
            }
        }
    }
    assert!(bad.is_empty(), "the agent imports the controller: {bad:#?}");
}

/// `util` is the bottom layer, and `inventory` imports nothing above it.
#[test]
fn util_and_inventory_are_the_bottom_layers() {
    let mut bad = Vec::new();
    for (m, deps) in graph() {
        for d in deps {
            let util_up = within(&m, "util") && !within(&d, "util");
            let inventory_up = within(&m, "inventory")
                && !within(&d, "inventory")
                && !within(&d, "util");
            if util_up || inventory_up {
                bad.push(format!("{m} -> {d}"));
            }
        }
    }
    assert!(bad.is_empty(), "the bottom layers import upwards: {bad:#?}");
}

/// No two files import each other, directly or around a loop (Tarjan's
/// strongly connected components; a component of more than one file is a
/// cycle).
#[test]
fn no_import_cycles_between_files() {
    let g = graph();
    let cycles =
        components(&g).into_iter().filter(|c| c.len() > 1).collect::<Vec<_>>();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

/// Tarjan's algorithm, iterative enough for a few hundred files.
fn components(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut c = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                c.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            s.out.push(c);
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn resolves_paths_the_way_rustc_does() {
    assert_eq!(
        absolute("agent::vrrp::fsm", "super::packet"),
        "agent::vrrp::packet"
    );
    assert_eq!(absolute("agent::vrrp", "super::status"), "agent::status");
    assert_eq!(absolute("agent::vrrp", "self::fsm"), "agent::vrrp::fsm");
    assert_eq!(absolute("a::b", "crate::util::hex"), "util::hex");
    assert_eq!(absolute("agent", "vrrp::fsm"), "agent::vrrp::fsm");
    let mut paths = Vec::new();
    expand("", "super::{a,b::{c,d}}", &mut paths);
    assert_eq!(paths, ["super::a", "super::b::c", "super::b::d"]);
    let cyclic: Graph = [("a", "b"), ("b", "a"), ("c", "a")]
        .iter()
        .map(|(k, v)| (k.to_string(), BTreeSet::from([v.to_string()])))
        .collect();
    let big: Vec<_> =
        components(&cyclic).into_iter().filter(|c| c.len() > 1).collect();
    assert_eq!(big.len(), 1, "{big:?}");
}
