//! Where each field of a YAML document is: field path → line and column.
//!
//! serde only locates syntax errors; semantic problems are found later on
//! typed values that no longer know where they came from. This index walks
//! the document's events once (yaml-rust2 reports a position for each) and
//! records the position of every key and value under the same path syntax
//! the diagnostics use: `virtual_services[0].real_servers[1].weight`.
//!
//! The same walk is the inventory's guard against hostile nesting: it pulls
//! events one at a time (no recursion, so no stack to overflow) and stops at
//! the first node nested deeper than [`DEPTH_MAX`], before serde's
//! recursive deserialiser ever sees the document.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

/// The deepest nesting of mappings and sequences (block or flow, counted
/// together) an inventory may have. A real inventory nests five or six
/// deep (`virtual_services[0].real_servers[1].check.http.…`); 64 leaves
/// room for anything an operator writes, yet keeps every recursive walk
/// over the tree (serde's, `Drop`'s) far from the stack's end, and the
/// paths this index builds (one string per node, as long as its depth)
/// short.
pub(crate) const DEPTH_MAX: usize = 64;

/// The most bytes of field paths the index may build. Each node's path
/// holds its ancestors' keys (YAML's implicit keys reach 1,024 bytes), so
/// a document of long keys nested deep with many leaves below them would
/// cost depth × key length × leaves — gigabytes from a 16 MiB file. An
/// inventory of 1,000 services with 10 real servers each needs about
/// 5 MiB of paths.
pub(crate) const PATH_BYTES_MAX: usize = 64 << 20;

/// Why a document was refused before it was loaded.
#[derive(Debug)]
pub(crate) struct TooDeep {
    /// Line and column of the first node past the bound.
    pub position: (usize, usize),
    /// Which bound: [`DEPTH_MAX`] (false) or [`PATH_BYTES_MAX`] (true).
    pub paths: bool,
}

/// Positions of the keys and values of one YAML document.
#[derive(Debug, Default)]
pub(crate) struct Locations {
    values: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
}

impl Locations {
    /// Index `source` in one pass, linear in its length. A document that
    /// does not parse yields the index up to the error; the syntax error
    /// itself is reported by the deserialiser.
    ///
    /// # Errors
    /// [`TooDeep`] at the first node nested deeper than [`DEPTH_MAX`].
    pub fn index(source: &str) -> Result<Self, TooDeep> {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(source);
        // A parse error only truncates the index; positions found before it
        // are still right, and serde reports the error with its location.
        loop {
            let (ev, mark) = match parser.next_token() {
                Ok(event) => event,
                // The scanner reads a run of flow openers (`[[[[…`) ahead
                // of the events and stops at its own bound (255 levels):
                // that run is too deep too, and located where it stopped.
                Err(e) if e.info() == "recursion limit exceeded" => {
                    let at = e.marker();
                    return Err(TooDeep {
                        position: (at.line(), at.col() + 1),
                        paths: false,
                    });
                }
                Err(_) => break,
            };
            // yaml-rust2 counts lines from 1 but columns from 0.
            let pos = (mark.line(), mark.col() + 1);
            match ev {
                Event::StreamEnd => break,
                Event::MappingStart(..) | Event::SequenceStart(..)
                    if walker.stack.len() >= DEPTH_MAX =>
                {
                    return Err(TooDeep { position: pos, paths: false });
                }
                _ => walker.on_event(ev, pos),
            }
            if walker.path_bytes > PATH_BYTES_MAX {
                return Err(TooDeep { position: pos, paths: true });
            }
        }
        Ok(walker.locations)
    }

    /// Where the field at `path` is written: its key when it has one (the
    /// name an operator looks for), else where the value starts (list
    /// items). A path that does not exist falls back to the nearest enclosing
    /// field, so a missing key is reported at the mapping that lacks it;
    /// `(1, 1)` when nothing matches.
    pub fn find(&self, path: &str) -> (usize, usize) {
        let mut path = path;
        loop {
            if let Some(pos) = self.keys.get(path).or(self.values.get(path)) {
                return *pos;
            }
            match parent(path) {
                Some(p) => path = p,
                None => return (1, 1),
            }
        }
    }
}

/// The path one level up: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// One open mapping or sequence during the walk.
enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    locations: Locations,
    /// Bytes of the paths built so far.
    path_bytes: usize,
}

impl Walker {
    /// The path of the node that starts now, or `None` when it is a key.
    fn enter(&mut self, ev: &Event, pos: (usize, usize)) -> Option<String> {
        let path = self.path_of(ev, pos);
        self.path_bytes += path.as_ref().map_or(0, String::len);
        path
    }

    /// [`Walker::enter`]'s answer, before it is counted.
    fn path_of(&mut self, ev: &Event, pos: (usize, usize)) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    // A key: complex keys (maps as keys) do not occur in an
                    // inventory; they get a placeholder name.
                    let name = match ev {
                        Event::Scalar(s, ..) => s.clone(),
                        _ => "?".to_owned(),
                    };
                    let full = join(path, &name);
                    self.path_bytes += full.len();
                    self.locations.keys.insert(full, pos);
                    // yaml-rust2 marks a block mapping's start after its
                    // first key; the first key is where a reader looks.
                    self.locations.values.entry(path.clone()).or_insert(pos);
                    *key = Some(name);
                    None
                }
            },
        }
    }
}

/// `path` extended by a map key, in the one path syntax that diagnostics,
/// the loader and this index share.
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

impl Walker {
    /// Record one event found at `pos`.
    fn on_event(&mut self, ev: Event, pos: (usize, usize)) {
        match ev {
            Event::Scalar(..) | Event::Alias(_) => {
                if let Some(path) = self.enter(&ev, pos) {
                    self.locations.values.insert(path, pos);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // Containers are never keys in an inventory; if one is, it
                // consumes the key slot and its contents index under "?".
                let path = self.enter(&ev, pos).unwrap_or_else(|| "?".into());
                self.stack.push(match ev {
                    Event::MappingStart(..) => Frame::Map { path, key: None },
                    _ => {
                        self.locations.values.insert(path.clone(), pos);
                        Frame::Seq { path, next: 0 }
                    }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
cluster: demo
directors:
  - name: a
    priority: 120
  - name: b
    priority: 70
";

    #[test]
    fn finds_keys_and_values() {
        let loc = Locations::index(DOC).unwrap();
        assert_eq!(loc.find("cluster"), (1, 1));
        assert_eq!(loc.find("directors[1].priority"), (6, 5));
        assert_eq!(loc.find("directors[0]"), (3, 5));
    }

    #[test]
    fn falls_back_to_the_enclosing_node() {
        let loc = Locations::index(DOC).unwrap();
        assert_eq!(loc.find("directors[1].interface"), (5, 5));
        assert_eq!(loc.find("nothing.here"), (1, 1));
    }

    /// `levels` mappings, one inside the other, in block style.
    fn block(levels: usize) -> String {
        (0..levels).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect()
    }

    #[test]
    fn nesting_up_to_the_bound_is_indexed() {
        let doc = format!("{}x: 1\n", block(DEPTH_MAX - 1).trim_end());
        let loc = Locations::index(&doc).unwrap();
        assert_eq!(loc.find("k0.k1"), (2, 2));
    }

    #[test]
    fn block_nesting_past_the_bound_is_refused_where_it_starts() {
        // Deep enough to overflow the stack of a recursive walk (it did at
        // 3,000 levels), refused at the first mapping past the bound.
        let e = Locations::index(&block(3_000)).unwrap_err();
        // yaml-rust2 marks a block mapping after its first key: `k64:`.
        assert_eq!(e.position, (DEPTH_MAX + 1, DEPTH_MAX + 4));
    }

    #[test]
    fn flow_nesting_past_the_bound_is_refused_where_it_starts() {
        // Closed: events reach the walk, which stops at the 64th `[` (the
        // mapping of `a` is the first level).
        let n = DEPTH_MAX + 10;
        let doc = format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
        let e = Locations::index(&doc).unwrap_err();
        assert_eq!(e.position, (1, 3 + DEPTH_MAX));
        // Unclosed and long: the scanner's own bound stops the run.
        let doc = format!("a: {}", "[".repeat(1 << 16));
        let e = Locations::index(&doc).unwrap_err();
        assert_eq!(e.position.0, 1);
    }

    #[test]
    fn long_keys_nested_deep_stop_at_the_path_budget() {
        // 63 levels of 1,000-byte keys, then 2,000 leaves: 63 kB of path
        // each, 126 MB in all from a 200 kB document.
        let key = "k".repeat(1_000);
        let mut doc: String = (0..63)
            .map(|depth| format!("{}{key}{depth}:\n", " ".repeat(depth)))
            .collect();
        for i in 0..2_000 {
            doc.push_str(&format!("{}l{i}: 1\n", " ".repeat(63)));
        }
        let e = Locations::index(&doc).unwrap_err();
        assert!(e.paths, "{e:?}");
        assert!(e.position.0 > 63, "{e:?}");
    }
}
