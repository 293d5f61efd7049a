//! Parser edge cases: structure, recovery and includes, with a two-level
//! grammar (`server` holds `check`, `check` holds nothing).

use std::path::{Path, PathBuf};

use super::*;

struct Toy;

impl Grammar for Toy {
    fn may_open(&self, parent: &str, child: &str) -> bool {
        match child {
            "server" => parent.is_empty(),
            "check" => parent == "server",
            _ => true,
        }
    }
}

fn parse(text: &str) -> (Vec<Node>, Report) {
    let mut report = Report::default();
    let nodes = parse_str(Path::new("t.conf"), text, &Toy, &mut report);
    (nodes, report)
}

fn messages(report: &Report) -> Vec<String> {
    report.items.iter().map(ToString::to_string).collect()
}

/// A fresh directory for include tests, removed first if a previous run
/// left it.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("lbdeploy-parser-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn empty_file_is_an_empty_tree() {
    let (nodes, report) = parse("");
    assert!(nodes.is_empty());
    assert!(report.items.is_empty());
}

#[test]
fn statements_blocks_and_comments_after_values() {
    let (nodes, report) = parse(
        "server a {  # first\n  weight 1 ! one\n  check {\n  }\n}\nx \"a b\"",
    );
    assert!(report.items.is_empty(), "{report}");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].label(), "server a");
    assert_eq!(nodes[0].children()[0].label(), "weight 1");
    assert_eq!(nodes[0].children()[1].keyword, "check");
    assert_eq!(nodes[1].args, ["a b"]);
    assert_eq!(nodes[1].pos.line, 6);
}

#[test]
fn brace_on_the_next_line_opens_the_statement_above() {
    let (nodes, report) = parse("server a\n{\n weight 2\n}\n");
    assert!(report.items.is_empty(), "{report}");
    assert_eq!(nodes[0].children()[0].label(), "weight 2");
}

#[test]
fn unclosed_block_is_located_at_its_opening() {
    let (nodes, report) = parse("server a {\n weight 1\n");
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        messages(&report),
        ["t.conf:1:1: error: server a is never closed: the end of t.conf is \
         reached inside it — add the missing `}`"]
    );
}

#[test]
fn stray_close_names_the_block_it_might_belong_to() {
    let (_, report) = parse("server a {\n}\n}\n");
    assert_eq!(
        messages(&report),
        [
            "t.conf:3:1: error: `}` closes no block (server a, opened at line 1, \
         already closed at line 2) — remove it, or add the missing `{` above"
        ]
    );
}

#[test]
fn missing_brace_is_hinted_and_recovered() {
    let (nodes, report) =
        parse("server a {\n check {\n }\nserver b {\n check {\n }\n}\n");
    assert_eq!(
        messages(&report),
        [
            "t.conf:4:1: error: server b opened inside server a (line 1): a closing \
         brace is probably missing before line 4"
        ]
    );
    assert_eq!(nodes.len(), 2, "recovery puts server b at the top level");
}

#[test]
fn block_that_fits_nowhere_is_an_error() {
    let (_, report) = parse("check {\n}\n");
    assert_eq!(
        messages(&report),
        ["t.conf:1:1: error: check cannot open at the top level — move it to \
         where it belongs"]
    );
}

#[test]
fn unterminated_quote_is_located() {
    let (_, report) = parse("x \"a b\n");
    assert_eq!(report.count(super::super::diag::Severity::Error), 1);
    assert!(
        messages(&report)[0].starts_with("t.conf:1:3: error: unterminated")
    );
}

#[test]
fn includes_splice_relative_files_in_sorted_order() {
    let dir = scratch("glob");
    std::fs::create_dir(dir.join("conf.d")).unwrap();
    std::fs::write(dir.join("main.conf"), "include conf.d/*.conf\nz 1\n")
        .unwrap();
    std::fs::write(dir.join("conf.d/b.conf"), "b 1\n").unwrap();
    std::fs::write(dir.join("conf.d/a.conf"), "a 1\n").unwrap();
    std::fs::write(dir.join("conf.d/.hidden.conf"), "h 1\n").unwrap();
    let mut report = Report::default();
    let nodes = parse_file(&dir.join("main.conf"), &Toy, &mut report);
    assert!(report.items.is_empty(), "{report}");
    let keywords: Vec<_> = nodes.iter().map(|n| n.keyword.as_str()).collect();
    assert_eq!(keywords, ["a", "b", "z"]);
    assert!(nodes[0].pos.file.ends_with("conf.d/a.conf"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn include_glob_without_match_is_a_warning() {
    let dir = scratch("nomatch");
    std::fs::write(dir.join("main.conf"), "include none/*.conf\nz 1\n")
        .unwrap();
    let mut report = Report::default();
    let nodes = parse_file(&dir.join("main.conf"), &Toy, &mut report);
    assert_eq!(nodes.len(), 1);
    assert_eq!(report.count(super::super::diag::Severity::Warning), 1);
    assert!(messages(&report)[0].contains("matches no file"), "{report}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn include_cycle_is_refused_at_the_include() {
    let dir = scratch("cycle");
    std::fs::write(dir.join("a.conf"), "x 1\ninclude b.conf\n").unwrap();
    std::fs::write(dir.join("b.conf"), "include a.conf\n").unwrap();
    let mut report = Report::default();
    let nodes = parse_file(&dir.join("a.conf"), &Toy, &mut report);
    assert_eq!(nodes.len(), 1);
    let all = messages(&report);
    assert_eq!(all.len(), 1, "{report}");
    assert!(all[0].contains("b.conf:1:1: error: include cycle"), "{report}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_literal_include_is_an_error() {
    let (_, report) = parse("include /nonexistent/keepalived.conf\n");
    assert!(messages(&report)[0].contains("cannot read included file"));
}

/// 100,000 nested braces once overflowed the stack; now the block past
/// [`NESTING_MAX`] is refused once and nothing after it is read.
#[test]
fn nesting_is_bounded() {
    let deep = "x {\n".repeat(100_000);
    let started = std::time::Instant::now();
    let (nodes, report) = parse(&deep);
    let errors = messages(&report);
    assert!(
        errors[0].contains(&format!("deeper than {NESTING_MAX} levels")),
        "{errors:?}"
    );
    assert!(errors[0].starts_with(&format!("t.conf:{}:", NESTING_MAX + 1)));
    // One error for the bound, one per block left open, and no more.
    assert_eq!(errors.len(), 1 + NESTING_MAX, "{errors:?}");
    assert_eq!(nodes.len(), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn only_bounded_regular_files_are_read() {
    let dir = scratch("bounded");
    let fifo = dir.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = dir.join("big.conf");
    std::fs::write(&big, vec![b'#'; FILE_MAX as usize + 1]).unwrap();
    let main = dir.join("main.conf");
    std::fs::write(
        &main,
        format!(
            "include /dev/zero\ninclude {}\ninclude {}\ninclude {}\n",
            fifo.display(),
            dir.display(),
            big.display()
        ),
    )
    .unwrap();
    let mut report = Report::default();
    parse_file(&main, &Toy, &mut report);
    let errors = messages(&report);
    assert_eq!(errors.len(), 4, "{errors:?}");
    for (e, line) in errors.iter().zip(1..) {
        assert!(e.contains(&format!("main.conf:{line}:")), "{e}");
    }
    for e in &errors[..3] {
        assert!(e.ends_with("not a regular file"), "{e}");
    }
    assert!(errors[3].contains(&format!("larger than {FILE_MAX} bytes")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn includes_nest_a_bounded_depth() {
    let dir = scratch("include-depth");
    for i in 0..20 {
        let next = format!("include {}.conf\n", i + 1);
        std::fs::write(dir.join(format!("{i}.conf")), next).unwrap();
    }
    std::fs::write(dir.join("20.conf"), "").unwrap();
    let mut report = Report::default();
    parse_file(&dir.join("0.conf"), &Toy, &mut report);
    let errors = messages(&report);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(&format!("deeper than {INCLUDE_DEPTH_MAX}")));
    std::fs::remove_dir_all(&dir).unwrap();
}
