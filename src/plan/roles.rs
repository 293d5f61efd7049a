//! Roles and templates: what each kind of host owns, and how its files look.
//!
//! `roles/*.yml` say which files (rendered from `templates/`), sysctls, binary
//! and service a role owns on a host. Both directories are embedded in the
//! binary so a bare `lbdeploy` works anywhere; `--roles-dir DIR` replaces
//! them with `DIR/roles` and `DIR/templates` for sites that need their own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::inventory::Mode;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Deserialize;

/// The role files and templates compiled into the binary.
const EMBEDDED_ROLES: &[(&str, &str)] = &[
    ("director", include_str!("../../roles/director.yml")),
    ("realserver", include_str!("../../roles/realserver.yml")),
];
const EMBEDDED_TEMPLATES: &[(&str, &str)] = &[
    (
        "agent-director.yml.j2",
        include_str!("../../templates/agent-director.yml.j2"),
    ),
    (
        "agent-realserver.yml.j2",
        include_str!("../../templates/agent-realserver.yml.j2"),
    ),
    ("sysctl.conf.j2", include_str!("../../templates/sysctl.conf.j2")),
    (
        "lbdeploy-agent.service.j2",
        include_str!("../../templates/lbdeploy-agent.service.j2"),
    ),
];

/// What a role owns on a host (`roles/<name>.yml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// The agent mode: `director` or `realserver`.
    pub agent: Mode,
    /// Where the agent binary is installed.
    pub binary: PathBuf,
    /// The service name (systemd unit without `.service`).
    pub service: String,
    /// The agent configuration file the service is started with.
    pub config: PathBuf,
    /// Managed files.
    pub files: Vec<RoleFile>,
    /// Kernel settings applied live and persisted; keys are templates.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
}

/// A file a role owns.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// Absolute path on the host.
    pub path: PathBuf,
    /// Template name under `templates/`.
    pub template: String,
    /// Octal permission bits, as a string: `"0644"`.
    pub mode: String,
    /// What the agent service needs when the file changes.
    pub on_change: OnChange,
    /// Only on hosts with this init system.
    #[serde(default)]
    pub only_with: Option<Init>,
}

/// The service action a changed file calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    /// Nothing (the content is applied another way).
    None,
    /// SIGHUP: the agent re-reads its configuration.
    Reload,
    /// Stop and start: the binary or the unit changed.
    Restart,
}

/// A host's init system, from its facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// systemd is PID 1.
    Systemd,
    /// No systemd (containers, the lab): lbdeploy supervises the agent.
    None,
}

/// Why the roles could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A role or template file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A role file is malformed.
    #[error("role `{name}`: {message}")]
    Role {
        /// The role.
        name: String,
        /// serde's message with line and column.
        message: String,
    },
    /// A value interpolated into a template holds a control character
    /// that would start a new line (a new directive, a new key) in the
    /// file; named by its expression, never shown.
    #[error(
        "template {template}: `{field}` contains a control character — \
         refused, it would inject lines into the rendered file"
    )]
    Unsafe {
        /// The template.
        template: String,
        /// The interpolated expression, as the template writes it.
        field: String,
    },
    /// A template failed to parse or render.
    #[error("template: {0:#}")]
    Template(#[from] minijinja::Error),
}

/// The roles and a template environment ready to render them.
pub struct Roles {
    roles: BTreeMap<String, Role>,
    templates: Environment<'static>,
}

impl Roles {
    /// The roles and templates compiled into the binary.
    ///
    /// # Errors
    /// Only if the embedded files are broken, which the tests rule out.
    pub fn embedded() -> Result<Self, Error> {
        let owned = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
                .collect()
        };
        Self::from_sources(owned(EMBEDDED_ROLES), owned(EMBEDDED_TEMPLATES))
    }

    /// The roles in `dir/roles/*.yml` and templates in `dir/templates/*`.
    ///
    /// # Errors
    /// When a file cannot be read or parsed.
    pub(crate) fn from_dir(dir: &Path) -> Result<Self, Error> {
        let read = |sub: &str, strip: Option<&str>| -> Result<Vec<_>, Error> {
            let path = dir.join(sub);
            let entries = std::fs::read_dir(&path)
                .map_err(|source| Error::Read { path: path.clone(), source })?;
            let mut out = Vec::new();
            for entry in entries {
                let file = entry
                    .map_err(|source| Error::Read {
                        path: path.clone(),
                        source,
                    })?
                    .path();
                let name =
                    file.file_name().unwrap_or_default().to_string_lossy();
                let name = match strip {
                    Some(ext) => match name.strip_suffix(ext) {
                        Some(n) => n.to_owned(),
                        None => continue,
                    },
                    None => name.into_owned(),
                };
                let text =
                    std::fs::read_to_string(&file).map_err(|source| {
                        Error::Read { path: file.clone(), source }
                    })?;
                out.push((name, text));
            }
            Ok(out)
        };
        Self::from_sources(
            read("roles", Some(".yml"))?,
            read("templates", None)?,
        )
    }

    fn from_sources(
        roles: Vec<(String, String)>,
        templates: Vec<(String, String)>,
    ) -> Result<Self, Error> {
        let roles = roles
            .into_iter()
            .map(|(name, text)| {
                serde_yaml::from_str(&text)
                    .map(|role| (name.clone(), role))
                    .map_err(|e| Error::Role { name, message: e.to_string() })
            })
            .collect::<Result<_, _>>()?;
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // minijinja would JSON-escape every value in `*.yml*` templates;
        // templates quote explicitly with `tojson` where YAML needs it.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                // Rendered files end with a newline, as text files should.
                .keep_trailing_newline(true)
                .build()
                .expect("default delimiters are valid"),
        );
        env.add_filter("yaml", yaml_filter);
        env.set_formatter(one_line_formatter);
        for (name, text) in templates {
            env.add_template_owned(name, text)?;
        }
        Ok(Self { roles, templates: env })
    }

    /// The role called `name`.
    ///
    /// # Errors
    /// When no such role exists.
    pub(crate) fn role(&self, name: &str) -> Result<&Role, Error> {
        self.roles.get(name).ok_or_else(|| Error::Role {
            name: name.to_owned(),
            message: "no such role (roles/<name>.yml)".to_owned(),
        })
    }

    /// Render template `name` with `context`.
    ///
    /// # Errors
    /// When the template does not exist or uses an undefined value.
    pub fn render(
        &self,
        name: &str,
        context: &minijinja::Value,
    ) -> Result<String, Error> {
        let template = self.templates.get_template(name)?;
        template
            .render(context.clone())
            .map_err(|e| refused(e, name, template.source()))
    }

    /// Render a one-line template string (sysctl keys) with `context`.
    ///
    /// # Errors
    /// When the string uses an undefined value.
    pub(crate) fn render_str(
        &self,
        source: &str,
        context: &minijinja::Value,
    ) -> Result<String, Error> {
        self.templates
            .render_str(source, context.clone())
            .map_err(|e| refused(e, "<string>", source))
    }
}

/// What the formatter says when it refuses a value; `refused` looks for
/// it to name the expression.
const UNSAFE_VALUE: &str = "interpolated value holds a control character";

/// Every `{{ … }}` goes through here: a value that is not already safe
/// (`tojson` and `yaml` quote and escape, and mark their output safe) is
/// written only if it holds no control character or Unicode line
/// separator, so a host name cannot add `[Service]` and `ExecStartPre=`
/// lines to the unit even if validation were bypassed (issue #17,
/// finding 4).
fn one_line_formatter(
    out: &mut minijinja::Output<'_>,
    state: &mut minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if !value.is_safe()
        && crate::inventory::forbidden_char(&value.to_string()).is_some()
    {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            UNSAFE_VALUE,
        ));
    }
    minijinja::escape_formatter(out, state, value)
}

/// The formatter's refusal as [`Error::Unsafe`], naming the expression
/// from the template's source; any other error as it is.
fn refused(e: minijinja::Error, template: &str, source: &str) -> Error {
    if e.detail() != Some(UNSAFE_VALUE) {
        return Error::Template(e);
    }
    let field = e
        .range()
        .and_then(|r| source.get(r))
        .map(|f| f.trim_matches(['{', '}', ' ', '-']).to_owned())
        .unwrap_or_else(|| format!("line {}", e.line().unwrap_or(0)));
    Error::Unsafe { template: template.to_owned(), field }
}

/// `key:{{ value | yaml }}`: the value of a YAML key, block-style and
/// indented by `indent` spaces (default 0) on the lines after the key's,
/// or inline after one space when it fits on the key's line (scalars, `[]`,
/// `{}`). Agent files are read by operators on the host, so they should look
/// like hand-written YAML, not JSON.
fn yaml_filter(
    value: minijinja::Value,
    kwargs: Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    let indent: usize = kwargs.get::<Option<usize>>("indent")?.unwrap_or(0);
    kwargs.assert_all_used()?;
    let text = serde_yaml::to_string(&value).map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            e.to_string(),
        )
    })?;
    let text = text.trim_end();
    let block = matches!(value.kind(), ValueKind::Seq | ValueKind::Map)
        && value.len().is_some_and(|n| n > 0);
    // serde_yaml quotes and escapes every string that needs it: the
    // output is safe for the formatter, and marked so.
    if !block {
        return Ok(minijinja::Value::from_safe_string(format!(" {text}")));
    }
    let pad = " ".repeat(indent);
    let lines = text.lines().map(|l| format!("\n{pad}{l}")).collect();
    Ok(minijinja::Value::from_safe_string(lines))
}

/// The unit file name of service `name` (`lbdeploy-agent.service`).
pub(crate) fn unit_file_name(name: &str) -> String {
    if name.ends_with(".service") {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// The directories whose drop-ins override service `name`'s unit and
/// that lbdeploy reads (facts) and may clean (activation): the unit's own
/// `.d` under `/etc` and `/run`, never global or vendor ones.
pub(crate) fn drop_in_dirs(name: &str) -> [PathBuf; 2] {
    let dir = format!("{}.d", unit_file_name(name));
    ["/etc/systemd/system", "/run/systemd/system"]
        .map(|base| Path::new(base).join(&dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_roles_load() {
        let roles = Roles::embedded().unwrap();
        assert_eq!(roles.role("director").unwrap().agent, Mode::Director);
        let rs = roles.role("realserver").unwrap();
        assert!(rs.sysctls.contains_key("net.ipv4.conf.all.arp_ignore"));
        assert!(roles.role("nope").is_err());
    }

    #[test]
    fn yaml_filter_indents_blocks_and_inlines_the_rest() {
        let roles = Roles::embedded().unwrap();
        let empty: Vec<String> = Vec::new();
        let ctx = minijinja::context!(
            v => vec!["a", "b"], e => empty, s => "x: y"
        );
        let render = |t: &str| roles.render_str(t, &ctx).unwrap();
        assert_eq!(render("k:{{ v | yaml(indent=2) }}"), "k:\n  - a\n  - b");
        assert_eq!(render("k:{{ e | yaml }}"), "k: []");
        assert_eq!(render("k:{{ s | yaml }}"), "k: 'x: y'");
    }

    /// The renderer's own guard, validation bypassed: a host name that
    /// would add a `[Service]` section is refused and named, never shown;
    /// quoted and escaped values pass.
    #[test]
    fn interpolated_control_characters_are_refused_by_name() {
        let roles = Roles::embedded().unwrap();
        let evil = "lb1\n[Service]\nExecStartPre=+/bin/sh -c 'id'";
        for host in [evil, "a\rb", "a\u{2028}b", "a\tb", "\u{1b}[2J"] {
            let ctx = minijinja::context!(host => host, cluster => "c");
            let err = roles
                .render_str("# for {{ host }} in {{ cluster }}\n", &ctx)
                .unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(&err, Error::Unsafe { field, .. } if field == "host"),
                "{text}"
            );
            assert!(!text.contains("Service") && !text.contains('\n'));
            // Quoted values keep their bytes and stay values.
            let quoted = roles
                .render_str(
                    "k:{{ [host] | yaml }}\nj: {{ host | tojson }}\n",
                    &ctx,
                )
                .unwrap();
            let back: BTreeMap<String, serde_yaml::Value> =
                serde_yaml::from_str(&quoted).unwrap();
            assert_eq!(back.len(), 2, "{quoted}");
            assert_eq!(back["k"][0].as_str(), Some(host), "{quoted}");
            assert_eq!(back["j"].as_str(), Some(host), "{quoted}");
        }
        let ctx = minijinja::context!(host => "lb1", n => 3);
        assert_eq!(
            roles.render_str("{{ host }} {{ n }}", &ctx).unwrap(),
            "lb1 3"
        );
    }

    /// Issue #17, finding 4, validation bypassed: the unit itself refuses
    /// a director name that would add `ExecStartPre=+…` as root.
    #[test]
    fn the_unit_refuses_a_name_that_adds_a_service_section() {
        let roles = Roles::embedded().unwrap();
        let ctx = |host: &str| {
            minijinja::context!(
                host => host, cluster => "c", agent => "director",
                binary => "/usr/local/bin/lbdeploy",
                config => "/etc/lbdeploy/agent.yml",
                systemd_restart_steps => true,
            )
        };
        let unit = "lbdeploy-agent.service.j2";
        assert!(roles.render(unit, &ctx("lb1")).is_ok());
        let evil = "lb1\n[Service]\nExecStartPre=+/bin/sh -c 'id > /tmp/p'";
        let err = roles.render(unit, &ctx(evil)).unwrap_err();
        assert!(
            matches!(&err, Error::Unsafe { template, field }
                if template == unit && field == "host"),
            "{err}"
        );
        assert!(!err.to_string().contains("ExecStartPre"), "{err}");
    }

    #[test]
    fn undefined_values_are_errors() {
        let roles = Roles::embedded().unwrap();
        let ctx = minijinja::context!();
        assert!(roles.render_str("{{ missing }}", &ctx).is_err());
    }

    #[test]
    fn roles_dir_overrides_the_embedded_ones() {
        let dir = std::env::temp_dir()
            .join(format!("lbd-roles-{}", std::process::id()));
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for sub in ["roles", "templates"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            for e in std::fs::read_dir(root.join(sub)).unwrap() {
                let p = e.unwrap().path();
                std::fs::copy(&p, dir.join(sub).join(p.file_name().unwrap()))
                    .unwrap();
            }
        }
        let from_dir = Roles::from_dir(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let from_dir = from_dir.unwrap();
        let embedded = Roles::embedded().unwrap();
        assert_eq!(from_dir.roles, embedded.roles);
    }
}
