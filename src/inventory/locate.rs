//! Where each field of a YAML document is: field path → line and column.
//!
//! serde only locates syntax errors; semantic problems are found later on
//! typed values that no longer know where they came from. This index walks
//! the document's events once (yaml-rust2 reports a position for each) and
//! records the position of every key and value under the same path syntax
//! the diagnostics use: `virtual_services[0].real_servers[1].weight`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Positions of the keys and values of one YAML document.
#[derive(Debug, Default)]
pub(crate) struct Locations {
    values: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
}

impl Locations {
    /// Index `source`. A document that does not parse yields an empty index;
    /// the syntax error itself is reported by the deserialiser.
    pub fn index(source: &str) -> Self {
        let mut walker = Walker::default();
        // A parse error only truncates the index; positions found before it
        // are still right, and serde reports the error with its location.
        let _ = Parser::new_from_str(source).load(&mut walker, false);
        walker.locations
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
}

impl Walker {
    /// The path of the node that starts now, or `None` when it is a key.
    fn enter(&mut self, ev: &Event, pos: (usize, usize)) -> Option<String> {
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
                    self.locations.keys.insert(join(path, &name), pos);
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

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        // yaml-rust2 counts lines from 1 but columns from 0.
        let pos = (mark.line(), mark.col() + 1);
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
        let loc = Locations::index(DOC);
        assert_eq!(loc.find("cluster"), (1, 1));
        assert_eq!(loc.find("directors[1].priority"), (6, 5));
        assert_eq!(loc.find("directors[0]"), (3, 5));
    }

    #[test]
    fn falls_back_to_the_enclosing_node() {
        let loc = Locations::index(DOC);
        assert_eq!(loc.find("directors[1].interface"), (5, 5));
        assert_eq!(loc.find("nothing.here"), (1, 1));
    }
}
