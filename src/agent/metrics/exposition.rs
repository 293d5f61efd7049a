//! The Prometheus text exposition format (version 0.0.4), written: one
//! `# HELP` and one `# TYPE` line per family, then its samples, label
//! values escaped. Pure.
//!
//! Label values come from the inventory (instance and service names) and
//! from hosts; the format lets a value hold any UTF-8 but `\`, `"` and a
//! line feed, which are escaped as `\\`, `\"` and `\n`. Help text escapes
//! `\` and the line feed. Metric and label names are this crate's own
//! constants, checked by the tests against the format's grammar.

use std::fmt::Write;

/// A family's type, as its `# TYPE` line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Goes up and down.
    Gauge,
    /// Only goes up (resets with the process); named `…_total`.
    Counter,
    /// Buckets, sum and count.
    Histogram,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// The exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Start a family: its `# HELP` and `# TYPE` lines. A counter's
    /// samples carry the `_total` its name ends with.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "{name}");
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"));
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.word());
    }

    /// One sample of `name` with `labels`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_name(k) && !k.starts_with("__"), "{k}");
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(k);
                self.text.push_str("=\"");
                escape_into(&mut self.text, v);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&number(value));
        self.text.push('\n');
    }

    /// A histogram's samples: cumulative `_bucket`s with their `le`, the
    /// `+Inf` one, `_sum` and `_count`. `counts` holds one count per
    /// bound plus one for above them all, not cumulative.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        let bucket = format!("{name}_bucket");
        let mut running = 0u64;
        for (i, bound) in bounds.iter().enumerate() {
            running += counts.get(i).copied().unwrap_or(0);
            let le = number(*bound);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, running as f64);
        }
        let total: u64 = counts.iter().sum();
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, total as f64);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, total as f64);
    }

    /// The text, ready to serve.
    pub fn finish(self) -> String {
        self.text
    }
}

/// A label value with `\`, `"` and line feeds escaped.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample value as the format writes it: integers without a fraction,
/// huge ones in exponent form, `+Inf`, `-Inf` and `NaN` spelled as Go's parser reads them.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if v.abs() >= 1e15 {
        format!("{v:e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Whether `name` is a metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`
/// (colons are the recording rules', but allowed).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_has_help_type_and_escaped_samples() {
        let mut e = Exposition::default();
        e.family("lbdeploy_x_total", Kind::Counter, "Things.\nBack\\slash");
        e.sample(
            "lbdeploy_x_total",
            &[("service", "a\"b\\c\nd"), ("address", "10.0.0.1")],
            3.0,
        );
        e.sample("lbdeploy_x_total", &[], 0.25);
        assert_eq!(
            e.finish(),
            "# HELP lbdeploy_x_total Things.\\nBack\\\\slash\n\
             # TYPE lbdeploy_x_total counter\n\
             lbdeploy_x_total{service=\"a\\\"b\\\\c\\nd\",address=\"10.0.0.1\"} 3\n\
             lbdeploy_x_total 0.25\n"
        );
    }

    #[test]
    fn a_histogram_is_cumulative_and_ends_with_inf_sum_and_count() {
        let mut e = Exposition::default();
        e.family("h_seconds", Kind::Histogram, "H.");
        e.histogram("h_seconds", &[("s", "web")], &[0.1, 1.0], &[2, 0, 1], 5.5);
        let text = e.finish();
        assert!(
            text.ends_with(
                "h_seconds_bucket{s=\"web\",le=\"0.1\"} 2\n\
                 h_seconds_bucket{s=\"web\",le=\"1\"} 2\n\
                 h_seconds_bucket{s=\"web\",le=\"+Inf\"} 3\n\
                 h_seconds_sum{s=\"web\"} 5.5\n\
                 h_seconds_count{s=\"web\"} 3\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn numbers_are_spelled_as_the_format_reads_them() {
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.0025), "0.0025");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(1.5e300), "1.5e300");
    }

    #[test]
    fn names_follow_the_grammar() {
        assert!(valid_name("lbdeploy_vrrp_state"));
        assert!(valid_name("_x:y9"));
        assert!(!valid_name("9x") && !valid_name("") && !valid_name("a-b"));
    }
}
