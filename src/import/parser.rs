//! From tokens to a tree of statements and blocks, `include` resolved.
//!
//! The parser knows keepalived's syntax but not its keywords: a statement is
//! a keyword and its values on one line, and a statement followed by `{`
//! opens a block (the `{` may also start the next line). Which block may
//! open inside which is the [`Grammar`]'s business; when a block opens where
//! it cannot but an enclosing block could hold it, the usual cause is a
//! missing `}`, so the parser says so, closes the blocks in between and goes
//! on — one forgotten brace is one error, not a cascade.
//!
//! `include PATTERN` is replaced by the statements of the matching files,
//! resolved relative to the including file; each included file must balance
//! its own braces.
//!
//! A keepalived.conf may come from anyone, and the import may run as root:
//! every file read is a regular file read up to [`FILE_MAX`] bytes, all of
//! them together up to [`TOTAL_MAX`], includes nest at most
//! [`INCLUDE_DEPTH_MAX`] deep and blocks [`NESTING_MAX`] deep. Past a bound
//! the file is refused with one error; nothing is read further, so memory
//! and time stay bounded by the bounds, not by the input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Pos, Report};
use super::lexer::{self, Kind, Token};
use crate::util::{files, glob};

/// The most one file may hold. The largest real configurations (a few
/// thousand real servers) are a few hundred KiB.
pub(crate) const FILE_MAX: u64 = 4 << 20;

/// The most all files of one import may hold together.
pub(crate) const TOTAL_MAX: u64 = 16 << 20;

/// How deep includes may nest. Real configurations include one level
/// (`include conf.d/*.conf`), rarely two.
pub(crate) const INCLUDE_DEPTH_MAX: usize = 8;

/// How deep blocks may nest. keepalived's own grammar goes five deep
/// (`virtual_server` → `real_server` → `HTTP_GET` → `url` → …).
pub(crate) const NESTING_MAX: usize = 16;

/// Which blocks may open where; supplied by the keyword layer.
pub(crate) trait Grammar {
    /// Whether a block `child` may open directly inside a block `parent`
    /// (`""` is the top level).
    fn may_open(&self, parent: &str, child: &str) -> bool;
}

/// A statement: a keyword, its values and, for a block, its statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The first word.
    pub keyword: String,
    /// The other words on the line.
    pub args: Vec<String>,
    /// Where the statement starts.
    pub pos: Pos,
    /// The statements inside `{ }`; `None` for a plain statement.
    pub children: Option<Vec<Node>>,
}

impl Node {
    /// `real_server 192.168.1.21 80`: how messages name a block.
    pub fn label(&self) -> String {
        std::iter::once(&self.keyword)
            .chain(&self.args)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The statements of a block; none for a plain statement.
    pub fn children(&self) -> &[Node] {
        self.children.as_deref().unwrap_or_default()
    }
}

/// Read and parse `path` and everything it includes. Problems go to
/// `report`; the tree holds whatever could be read.
pub(crate) fn parse_file(
    path: &Path,
    grammar: &dyn Grammar,
    report: &mut Report,
) -> Vec<Node> {
    Loader::new(grammar, report).file(path, None)
}

/// Parse text that has no file of its own (`name` is only for messages);
/// an `include` in it resolves relative to the current directory.
pub(crate) fn parse_str(
    name: &Path,
    text: &str,
    grammar: &dyn Grammar,
    report: &mut Report,
) -> Vec<Node> {
    Loader::new(grammar, report).text(name.into(), text)
}

/// Reads files, following includes; `active` is the chain of files being
/// read, to refuse a cycle.
struct Loader<'a> {
    grammar: &'a dyn Grammar,
    report: &'a mut Report,
    /// Each file being read: canonical path (to compare) and the path as
    /// the messages name it.
    active: Vec<(PathBuf, PathBuf)>,
    /// Bytes read so far, of every file.
    read: u64,
    /// Directory entries the include patterns may still list, over every
    /// file (`glob::expand`).
    listing: usize,
}

impl<'a> Loader<'a> {
    /// A loader that has read nothing yet.
    fn new(grammar: &'a dyn Grammar, report: &'a mut Report) -> Self {
        Loader {
            grammar,
            report,
            active: Vec::new(),
            read: 0,
            listing: glob::ENTRIES_MAX,
        }
    }

    fn file(&mut self, path: &Path, from: Option<&Pos>) -> Vec<Node> {
        let what = match from {
            Some(_) => "included file",
            None => "keepalived configuration",
        };
        if self.active.len() >= INCLUDE_DEPTH_MAX {
            self.report.error(
                from,
                format!(
                    "includes nest deeper than {INCLUDE_DEPTH_MAX} files — \
                     {} is not read",
                    path.display()
                ),
            );
            return Vec::new();
        }
        let budget = FILE_MAX.min(TOTAL_MAX.saturating_sub(self.read));
        let text = match files::read_regular(path, budget) {
            Ok(text) => text,
            Err(e) => {
                let bounds = match e.kind() {
                    std::io::ErrorKind::FileTooLarge => format!(
                        " (the bound of one file is {FILE_MAX}, of all files \
                         together {TOTAL_MAX})"
                    ),
                    _ => String::new(),
                };
                let m = format!(
                    "cannot read {what} {}: {e}{bounds}",
                    path.display()
                );
                self.report.error(from, m);
                return Vec::new();
            }
        };
        self.read += text.len() as u64;
        let canonical = path.canonicalize().unwrap_or_else(|_| path.into());
        if let Some(i) = self.active.iter().position(|p| p.0 == canonical) {
            let chain: Vec<_> = self.active[i..]
                .iter()
                .map(|p| p.1.display().to_string())
                .collect();
            self.report.error(
                from,
                format!(
                    "include cycle: {} includes {} again — remove one of \
                     the includes",
                    chain.join(" → "),
                    path.display()
                ),
            );
            return Vec::new();
        }
        self.active.push((canonical, path.to_owned()));
        let nodes = self.text(path.into(), &text);
        self.active.pop();
        nodes
    }

    fn text(&mut self, file: Arc<Path>, text: &str) -> Vec<Node> {
        let (tokens, errors) = lexer::lex(text);
        for e in errors {
            let pos = Pos { file: file.clone(), line: e.line, col: e.col };
            self.report.error(Some(&pos), e.message);
        }
        let mut builder = Builder {
            file,
            stack: Vec::new(),
            root: Vec::new(),
            statement: None,
            last_closed: None,
            too_deep: false,
        };
        for token in tokens {
            builder.token(token, self);
            if builder.too_deep {
                break;
            }
        }
        builder.finish(self)
    }

    /// The files an `include` statement names, parsed.
    fn include(&mut self, node: &Node) -> Vec<Node> {
        let [pattern] = node.args.as_slice() else {
            self.report.error(
                Some(&node.pos),
                "`include` takes one file or pattern, e.g. \
                 `include conf.d/*.conf`",
            );
            return Vec::new();
        };
        let dir = node.pos.file.parent().unwrap_or(Path::new(""));
        let target = dir.join(pattern);
        if !glob::is_pattern(pattern) {
            return self.file(&target, Some(&node.pos));
        }
        let files = match glob::expand(&target, &mut self.listing) {
            Ok(files) => files,
            Err(e) => {
                self.report.error(
                    Some(&node.pos),
                    format!(
                        "`include {pattern}` is not read: {e} ({}) — name \
                         the directory of the files it means",
                        target.display()
                    ),
                );
                return Vec::new();
            }
        };
        if files.is_empty() {
            self.report.warn(
                Some(&node.pos),
                format!(
                    "`include {pattern}` matches no file ({}) — nothing is \
                     included",
                    target.display()
                ),
            );
        }
        files.iter().flat_map(|f| self.file(f, Some(&node.pos))).collect()
    }
}

/// Where a token starts.
#[derive(Debug, Clone, Copy)]
struct At {
    line: u32,
    col: u32,
}

/// An open block: its header and the statements read so far.
struct Frame {
    node: Node,
    children: Vec<Node>,
}

/// Builds the tree of one file from its tokens.
struct Builder {
    file: Arc<Path>,
    stack: Vec<Frame>,
    root: Vec<Node>,
    /// The words of the statement on the current line, and where its
    /// first word is.
    statement: Option<(Vec<String>, At)>,
    /// The most recently closed block and the line of its `}`, for the
    /// hint on a stray `}`.
    last_closed: Option<(String, Pos, u32)>,
    /// A block opened past [`NESTING_MAX`]: the rest of the file is not
    /// read.
    too_deep: bool,
}

impl Builder {
    fn pos(&self, at: At) -> Pos {
        Pos { file: self.file.clone(), line: at.line, col: at.col }
    }

    fn children(&mut self) -> &mut Vec<Node> {
        match self.stack.last_mut() {
            Some(frame) => &mut frame.children,
            None => &mut self.root,
        }
    }

    fn token(&mut self, token: Token, loader: &mut Loader<'_>) {
        let at = At { line: token.line, col: token.col };
        match token.kind {
            Kind::Word(word) => {
                if self.statement.as_ref().is_some_and(|s| s.1.line != at.line)
                {
                    self.flush(loader);
                }
                let statement =
                    self.statement.get_or_insert_with(|| (vec![], at));
                statement.0.push(word);
            }
            Kind::Open => self.open(at, loader),
            Kind::Close => {
                self.flush(loader);
                self.close(at, loader);
            }
        }
    }

    /// End the pending statement as a plain one (or expand an include).
    fn flush(&mut self, loader: &mut Loader<'_>) {
        let Some((words, at)) = self.statement.take() else { return };
        let node = self.node(words, at);
        if node.keyword == "include" {
            let included = loader.include(&node);
            self.children().extend(included);
        } else {
            self.children().push(node);
        }
    }

    fn node(&self, mut words: Vec<String>, at: At) -> Node {
        let keyword = words.remove(0);
        Node { keyword, args: words, pos: self.pos(at), children: None }
    }

    fn open(&mut self, at: At, loader: &mut Loader<'_>) {
        let node = match self.statement.take() {
            Some((words, first)) => self.node(words, first),
            // `{` at the start of a line belongs to the statement above.
            None => match self.children().pop() {
                Some(prev) if prev.children.is_none() => prev,
                prev => {
                    self.children().extend(prev);
                    loader.report.error(
                        Some(&self.pos(at)),
                        "`{` without a keyword in front of it — write the \
                         block's keyword (e.g. `vrrp_instance VI_1 {`)",
                    );
                    self.node(vec!["{".into()], at)
                }
            },
        };
        if self.stack.len() >= NESTING_MAX {
            loader.report.error(
                Some(&node.pos),
                format!(
                    "blocks nest deeper than {NESTING_MAX} levels here — \
                     keepalived's go five deep; the rest of the file is not \
                     read"
                ),
            );
            self.too_deep = true;
            return;
        }
        self.check_nesting(&node, loader);
        self.stack.push(Frame { node, children: Vec::new() });
    }

    /// A block that cannot open here but fits an enclosing block means
    /// braces are missing: say where, and close the blocks in between.
    fn check_nesting(&mut self, node: &Node, loader: &mut Loader<'_>) {
        let grammar = loader.grammar;
        let parent = |i: usize| match i {
            0 => "",
            i => self.stack[i - 1].node.keyword.as_str(),
        };
        let depth = self.stack.len();
        if grammar.may_open(parent(depth), &node.keyword) {
            return;
        }
        let Some(fits) = (0..depth)
            .rev()
            .find(|&i| grammar.may_open(parent(i), &node.keyword))
        else {
            let inside = match self.stack.last() {
                Some(f) => format!("inside {}", f.node.label()),
                None => "at the top level".to_owned(),
            };
            loader.report.error(
                Some(&node.pos),
                format!(
                    "{} cannot open {inside} — move it to where it belongs",
                    node.keyword
                ),
            );
            return;
        };
        let inner = &self.stack[depth - 1].node;
        let missing = match depth - fits {
            1 => "a closing brace is".to_owned(),
            n => format!("{n} closing braces are"),
        };
        loader.report.error(
            Some(&node.pos),
            format!(
                "{} opened inside {} ({}): {missing} probably missing before \
                 line {}",
                node.label(),
                inner.label(),
                inner.pos.relative_to(&node.pos),
                node.pos.line
            ),
        );
        while self.stack.len() > fits {
            self.pop(node.pos.line);
        }
    }

    fn close(&mut self, at: At, loader: &mut Loader<'_>) {
        if self.stack.is_empty() {
            let hint = match &self.last_closed {
                Some((label, open, close)) => format!(
                    " ({label}, opened at line {}, already closed at line \
                     {close})",
                    open.line
                ),
                None => String::new(),
            };
            loader.report.error(
                Some(&self.pos(at)),
                format!(
                    "`}}` closes no block{hint} — remove it, or add the \
                     missing `{{` above"
                ),
            );
            return;
        }
        self.pop(at.line);
    }

    fn pop(&mut self, line: u32) {
        let Some(Frame { mut node, children }) = self.stack.pop() else {
            return;
        };
        self.last_closed = Some((node.label(), node.pos.clone(), line));
        node.children = Some(children);
        self.children().push(node);
    }

    fn finish(mut self, loader: &mut Loader<'_>) -> Vec<Node> {
        self.flush(loader);
        let end = self.file.display().to_string();
        for frame in self.stack.iter().rev() {
            loader.report.error(
                Some(&frame.node.pos),
                format!(
                    "{} is never closed: the end of {end} is reached inside \
                     it — add the missing `}}`",
                    frame.node.label()
                ),
            );
        }
        while !self.stack.is_empty() {
            self.pop(0);
        }
        self.root
    }
}

#[cfg(test)]
mod tests;
