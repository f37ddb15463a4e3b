//! The instructions that change only the image config (ENV, LABEL,
//! EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, SHELL, HEALTHCHECK, ONBUILD,
//! CMD, ENTRYPOINT, MAINTAINER), applied to the config's JSON as docker
//! records them, with the history text (`created_by`) each leaves.

use serde_json::{json, Map, Value};

use super::dockerfile::{json_array, Command, Instruction};
use super::expand::{self, Vars};
use super::BuildError;

/// What a stage knows besides its config: its variables and whether CMD was
/// set in it (ENTRYPOINT clears an inherited CMD, not one of the stage).
pub struct Scope<'a> {
    /// ARG values in scope, below ENV.
    pub args: &'a Vars,
    /// The escape character.
    pub escape: char,
    /// CMD was given in this stage.
    pub cmd_set: &'a mut bool,
}

/// The `config` object of an image config, made an object if it is not.
pub fn inner(config: &mut Value) -> &mut Map<String, Value> {
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    config["config"].as_object_mut().expect("made an object")
}

/// The config's Env as a map.
pub fn env_of(config: &Value) -> Vec<(String, String)> {
    config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str())
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.to_string(), String::new()),
        })
        .collect()
}

/// The variables an instruction's arguments see: ARGs, then ENV over them.
pub fn vars(config: &Value, args: &Vars) -> Vars {
    let mut v = args.clone();
    v.extend(env_of(config));
    v
}

/// The stage's shell (SHELL, else `/bin/sh -c`).
pub fn shell(config: &Value) -> Vec<String> {
    config["config"]["Shell"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// A command as the config holds it: exec form as is, shell form wrapped
/// in the stage's shell.
pub fn command_vec(c: &Command, config: &Value) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = shell(config);
            v.push(s.clone());
            v
        }
    }
}

fn step_err(i: &Instruction, why: impl std::fmt::Display) -> BuildError {
    BuildError::Step {
        line: i.line,
        instruction: i.original.clone(),
        why: why.to_string(),
    }
}

/// Applies a config-only instruction; returns its history text.
pub fn apply(
    i: &Instruction,
    config: &mut Value,
    scope: &mut Scope<'_>,
) -> Result<String, BuildError> {
    let vars = vars(config, scope.args);
    let esc = scope.escape;
    let ex = |e: expand::ExpandError| step_err(i, e);
    let nop = |s: String| format!("/bin/sh -c #(nop) {s}");
    Ok(match i.keyword.as_str() {
        "ENV" => {
            let pairs = expand::pairs(&i.args, &vars, esc, true).map_err(ex)?;
            let mut env = env_of(config);
            let mut shown = Vec::new();
            for (k, v) in pairs {
                if k.is_empty() {
                    return Err(step_err(i, "ENV names must not be empty"));
                }
                shown.push(format!("{k}={v}"));
                match env.iter_mut().find(|(ek, _)| *ek == k) {
                    Some(e) => e.1 = v,
                    None => env.push((k, v)),
                }
            }
            inner(config).insert(
                "Env".into(),
                json!(env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()),
            );
            nop(format!("ENV {}", shown.join(" ")))
        }
        "LABEL" => {
            let pairs = expand::pairs(&i.args, &vars, esc, true).map_err(ex)?;
            let c = inner(config);
            if !c.get("Labels").is_some_and(|l| l.is_object()) {
                c.insert("Labels".into(), json!({}));
            }
            let mut shown = Vec::new();
            for (k, v) in pairs {
                shown.push(format!("{k}={v}"));
                c["Labels"][&k] = json!(v);
            }
            nop(format!("LABEL {}", shown.join(" ")))
        }
        "MAINTAINER" => {
            let who = expand::word(&i.args, &vars, esc).map_err(ex)?;
            config["author"] = json!(who);
            nop(format!("MAINTAINER {who}"))
        }
        "EXPOSE" => {
            let ports = expand::words(&i.args, &vars, esc).map_err(ex)?;
            let c = inner(config);
            if !c.get("ExposedPorts").is_some_and(|l| l.is_object()) {
                c.insert("ExposedPorts".into(), json!({}));
            }
            let mut shown = Vec::new();
            for p in ports {
                let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let proto = proto.to_ascii_lowercase();
                let ok = |n: &str| n.parse::<u16>().is_ok();
                let valid = match port.split_once('-') {
                    Some((a, b)) => ok(a) && ok(b),
                    None => ok(port),
                } && matches!(proto.as_str(), "tcp" | "udp" | "sctp");
                if !valid {
                    return Err(step_err(i, format!("invalid port {p:?}")));
                }
                let key = format!("{port}/{proto}");
                shown.push(key.clone());
                c["ExposedPorts"][&key] = json!({});
            }
            nop(format!("EXPOSE {}", shown.join(" ")))
        }
        "VOLUME" => {
            let vols = match json_array(&i.args) {
                Some(v) => v
                    .iter()
                    .map(|s| expand::word(s, &vars, esc))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(ex)?,
                None => expand::words(&i.args, &vars, esc).map_err(ex)?,
            };
            let c = inner(config);
            if !c.get("Volumes").is_some_and(|l| l.is_object()) {
                c.insert("Volumes".into(), json!({}));
            }
            for v in &vols {
                if v.is_empty() {
                    return Err(step_err(i, "VOLUME specified can not be an empty string"));
                }
                c["Volumes"][v] = json!({});
            }
            nop(format!("VOLUME [{}]", vols.join(" ")))
        }
        "USER" => {
            let u = expand::word(&i.args, &vars, esc).map_err(ex)?;
            inner(config).insert("User".into(), json!(u));
            nop(format!("USER {u}"))
        }
        "WORKDIR" => {
            let w = expand::word(&i.args, &vars, esc).map_err(ex)?;
            let cur = config["config"]["WorkingDir"]
                .as_str()
                .unwrap_or("/")
                .to_string();
            let joined = if w.starts_with('/') {
                w
            } else {
                format!("{}/{w}", cur.trim_end_matches('/'))
            };
            let clean = clean_abs(&joined);
            inner(config).insert("WorkingDir".into(), json!(clean));
            nop(format!("WORKDIR {clean}"))
        }
        "STOPSIGNAL" => {
            let s = expand::word(&i.args, &vars, esc).map_err(ex)?;
            if berth_rules::signal::parse(&s).is_err() {
                return Err(step_err(i, format!("invalid signal {s:?}")));
            }
            inner(config).insert("StopSignal".into(), json!(s));
            nop(format!("STOPSIGNAL {s}"))
        }
        "SHELL" => {
            let v = json_array(&i.args)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| step_err(i, "SHELL requires the arguments to be in JSON form"))?;
            inner(config).insert("Shell".into(), json!(v));
            nop(format!(
                "SHELL {}",
                serde_json::to_string(&v).unwrap_or_default()
            ))
        }
        "CMD" => {
            let v = command_vec(&i.command(), config);
            inner(config).insert("Cmd".into(), json!(v));
            *scope.cmd_set = true;
            nop(format!(
                "CMD {}",
                serde_json::to_string(&v).unwrap_or_default()
            ))
        }
        "ENTRYPOINT" => {
            let v = match i.command() {
                Command::Shell(s) if s.is_empty() => Vec::new(),
                c => command_vec(&c, config),
            };
            let c = inner(config);
            c.insert(
                "Entrypoint".into(),
                if v.is_empty() { Value::Null } else { json!(v) },
            );
            if !*scope.cmd_set {
                c.insert("Cmd".into(), Value::Null);
            }
            nop(format!(
                "ENTRYPOINT {}",
                serde_json::to_string(&v).unwrap_or_default()
            ))
        }
        "ONBUILD" => {
            let inner_kw = i
                .args
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(inner_kw.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(step_err(
                    i,
                    format!("{inner_kw} isn't allowed as an ONBUILD trigger"),
                ));
            }
            let c = inner(config);
            let mut list = c
                .get("OnBuild")
                .and_then(|o| o.as_array())
                .cloned()
                .unwrap_or_default();
            list.push(json!(i.args));
            c.insert("OnBuild".into(), json!(list));
            nop(format!("ONBUILD {}", i.args))
        }
        "HEALTHCHECK" => healthcheck(i, config)?,
        other => return Err(step_err(i, format!("{other} is not a config instruction"))),
    })
}

fn healthcheck(i: &Instruction, config: &mut Value) -> Result<String, BuildError> {
    let nop = |s: String| format!("/bin/sh -c #(nop) HEALTHCHECK {s}");
    let (first, rest) = i
        .args
        .split_once(char::is_whitespace)
        .unwrap_or((&i.args, ""));
    match first.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !rest.trim().is_empty() || !i.flags.is_empty() {
                return Err(step_err(i, "HEALTHCHECK NONE takes no arguments"));
            }
            inner(config).insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
            Ok(nop("NONE".into()))
        }
        "CMD" => {
            i.check_flags(&[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ])?;
            let test = match json_array(rest) {
                Some(v) => {
                    let mut t = vec!["CMD".to_string()];
                    t.extend(v);
                    t
                }
                None => vec!["CMD-SHELL".to_string(), rest.trim().to_string()],
            };
            let mut h = json!({ "Test": test });
            for (flag, key) in [
                ("interval", "Interval"),
                ("timeout", "Timeout"),
                ("start-period", "StartPeriod"),
                ("start-interval", "StartInterval"),
            ] {
                if let Some(v) = i.flag(flag) {
                    let ns = berth_rules::time::go_duration_ns(v)
                        .filter(|&n| n >= 0)
                        .ok_or_else(|| step_err(i, format!("--{flag}: invalid duration {v:?}")))?;
                    if ns != 0 {
                        h[key] = json!(ns);
                    }
                }
            }
            if let Some(r) = i.flag("retries") {
                let n: i64 = r
                    .parse()
                    .ok()
                    .filter(|&n: &i64| n >= 0)
                    .ok_or_else(|| step_err(i, format!("--retries: invalid number {r:?}")))?;
                if n != 0 {
                    h["Retries"] = json!(n);
                }
            }
            inner(config).insert("Healthcheck".into(), h.clone());
            Ok(nop(format!("CMD {}", h["Test"])))
        }
        _ => Err(step_err(i, "HEALTHCHECK must be NONE or CMD ...")),
    }
}

/// An absolute path cleaned (`/a/./b/../c` is `/a/c`).
pub fn clean_abs(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::dockerfile::parse;

    fn run(df: &str) -> Value {
        let mut config = json!({"config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]}});
        let args: Vars = [("V".to_string(), "9".to_string())].into();
        let mut cmd_set = false;
        for i in parse(df).unwrap().instructions {
            let mut scope = Scope {
                args: &args,
                escape: '\\',
                cmd_set: &mut cmd_set,
            };
            apply(&i, &mut config, &mut scope).unwrap();
        }
        config
    }

    #[test]
    fn config_instructions_record_what_docker_records() {
        let c = run(concat!(
            "ENV PATH=/usr/bin:$PATH A=\"x y\"\nENV B $V\nLABEL a=1 \"b c\"=2\nEXPOSE 80 53/udp\n",
            "VOLUME [\"/data\"]\nVOLUME /v1 /v2\nUSER app:app\nWORKDIR /srv\nWORKDIR web/../app\n",
            "STOPSIGNAL SIGTERM\nSHELL [\"/bin/ash\", \"-c\"]\nENTRYPOINT echo hi\nONBUILD RUN x\n",
            "HEALTHCHECK --interval=30s --retries=3 CMD wget -q localhost\nMAINTAINER me\n"
        ));
        let k = &c["config"];
        assert_eq!(k["Env"], json!(["PATH=/usr/bin:/bin", "A=x y", "B=9"]));
        assert_eq!(k["Labels"], json!({"a": "1", "b c": "2"}));
        assert_eq!(k["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(k["Volumes"], json!({"/data": {}, "/v1": {}, "/v2": {}}));
        assert_eq!(k["User"], "app:app");
        assert_eq!(k["WorkingDir"], "/srv/app");
        assert_eq!(k["StopSignal"], "SIGTERM");
        assert_eq!(k["Entrypoint"], json!(["/bin/ash", "-c", "echo hi"]));
        // ENTRYPOINT clears the inherited CMD.
        assert_eq!(k["Cmd"], Value::Null);
        assert_eq!(k["OnBuild"], json!(["RUN x"]));
        assert_eq!(
            k["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 30_000_000_000i64, "Retries": 3})
        );
        assert_eq!(c["author"], "me");
        // A CMD of the stage survives a later ENTRYPOINT.
        let c = run("CMD [\"a\"]\nENTRYPOINT [\"b\"]\n");
        assert_eq!(c["config"]["Cmd"], json!(["a"]));
    }
}
