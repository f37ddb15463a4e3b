//! `exec`: a further process in a running task.

use crate::containers::spec;
use crate::store::images::ImageError;
use berth_proto::shim::{self as shimpb};
use serde_json::Value;

use super::create::layer_file;
use super::*;

impl Manager {
    /// Adds an exec process: the container's process with `args`, and the
    /// given env, workdir and user over it.
    #[allow(clippy::too_many_arguments)]
    pub async fn exec(
        &self,
        ns: &str,
        id: &str,
        exec_id: &str,
        args: Vec<String>,
        env: Vec<String>,
        workdir: String,
        user: String,
        tty: bool,
        stdin: bool,
        privileged: bool,
    ) -> Result<(), TaskError> {
        if !berth_rules::id::is_name(exec_id) {
            return Err(TaskError::Invalid(format!("invalid exec id {exec_id:?}")));
        }
        if args.is_empty() {
            return Err(TaskError::Invalid("exec needs a command".into()));
        }
        let c = self.records().get(ns, id)?;
        let t = self.running_task(ns, id)?;
        let mut p = c.spec["process"].clone();
        p["args"] = serde_json::json!(args);
        p["terminal"] = Value::Bool(tty);
        let base: Vec<String> = serde_json::from_value(p["env"].clone()).unwrap_or_default();
        let mut env = spec::merge_env(&base, &env);
        if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        p["env"] = serde_json::json!(env);
        if !workdir.is_empty() {
            p["cwd"] = Value::String(workdir);
        }
        if !user.is_empty() {
            let layers = self
                .images
                .snapshots
                .layer_dirs(ns, &c.snapshot)
                .map_err(ImageError::from)?;
            let u = spec::resolve_user(
                &user,
                layer_file(&layers, "etc/passwd").as_deref(),
                layer_file(&layers, "etc/group").as_deref(),
            )?;
            p["user"] = serde_json::json!({"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids});
        }
        if privileged {
            let all = spec::capabilities(&["ALL".into()], &[])?;
            p["capabilities"] =
                serde_json::json!({"bounding": all, "effective": all, "permitted": all});
        }
        t.client
            .clone()
            .exec(shimpb::ExecRequest {
                id: id.into(),
                exec_id: exec_id.into(),
                terminal: tty,
                stdin,
                spec: p.to_string(),
            })
            .await
            .map_err(shim_err(id))?;
        Ok(())
    }
}
