//! The build driver: the Dockerfile split into its global ARGs and its
//! stages, the stages the target needs built in order, and every
//! instruction a step whose result is an image (a manifest in the content
//! store, held by a lease while the build runs) found in the build cache or
//! made: config steps change the config, RUN, COPY, ADD and a WORKDIR that
//! must be made add one layer, diffed from the step's snapshot, which is
//! then committed as that layer's chain snapshot so the next step starts
//! from it without unpacking.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::config::{self, Scope};
use super::dockerfile::{self, Command, Instruction};
use super::expand::{self, Vars};
use super::state::{push_history, State};
use super::{io, short_id, BuildError, Event, Events, Request};
use crate::containers::tasks::Manager;
use crate::store::build_cache;
use crate::store::digest::Digest;
use crate::store::images::{Image, ImageError, Images};
use crate::store::mirrors::RegistrySettings;
use crate::store::oci::Platform;

/// Builds images; one per berthd.
pub struct Builder {
    /// Containers for RUN.
    pub manager: Arc<Manager>,
    /// The image store.
    pub store: Arc<Images>,
    /// Where FROM pulls from.
    pub registries: Arc<RegistrySettings>,
    /// Scratch space (mount points, logs), on berthd's state.
    pub work: PathBuf,
}

/// A stage as written: its FROM and what follows.
struct StageDef {
    from: Instruction,
    name: Option<String>,
    body: Vec<Instruction>,
}

/// One build's running context.
pub(super) struct Run<'a> {
    pub(super) ns: &'a str,
    pub(super) id: String,
    pub(super) req: &'a Request,
    pub(super) escape: char,
    pub(super) tx: &'a Events,
    pub(super) meta_args: Vars,
    pub(super) lease: String,
    /// Cache keys of every step, for the final image to own.
    pub(super) keys: Vec<Digest>,
    pub(super) step: usize,
    pub(super) steps: usize,
    pub(super) done: BTreeMap<usize, State>,
    pub(super) names: BTreeMap<String, usize>,
    pub(super) mounts: usize,
}

pub(super) fn step_err(i: &Instruction, why: impl std::fmt::Display) -> BuildError {
    BuildError::Step {
        line: i.line,
        instruction: i.original.clone(),
        why: why.to_string(),
    }
}

pub(super) fn worker(e: tokio::task::JoinError) -> BuildError {
    BuildError::Invalid(format!("worker: {e}"))
}

/// Splits the instructions into global ARGs and stages.
fn split(df: &dockerfile::Dockerfile) -> Result<(Vec<Instruction>, Vec<StageDef>), BuildError> {
    let mut globals = Vec::new();
    let mut stages: Vec<StageDef> = Vec::new();
    for i in &df.instructions {
        if i.keyword == "FROM" {
            let words: Vec<&str> = i.args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_] => None,
                [_, as_, n] if as_.eq_ignore_ascii_case("as") => Some(n.to_ascii_lowercase()),
                _ => return Err(step_err(i, "FROM takes an image and an optional AS name")),
            };
            stages.push(StageDef {
                from: i.clone(),
                name,
                body: Vec::new(),
            });
        } else if let Some(s) = stages.last_mut() {
            s.body.push(i.clone());
        } else if i.keyword == "ARG" {
            globals.push(i.clone());
        } else {
            return Err(step_err(i, "no build stage in current context: a Dockerfile starts with FROM (ARGs may come before it)"));
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Invalid(
            "the Dockerfile has no FROM: nothing to build".into(),
        ));
    }
    Ok((globals, stages))
}

impl Builder {
    /// Runs a build, reporting on `tx`; the last event is `Done`.
    pub async fn build(
        self: &Arc<Self>,
        ns: &str,
        req: Request,
        tx: &Events,
    ) -> Result<(), BuildError> {
        let df = dockerfile::parse(&req.dockerfile)?;
        let (globals, stages) = split(&df)?;
        let id = berth_rules::id::random()[..16].to_string();
        let lease = self
            .store
            .lease_create(ns, &format!("build-{id}"), BTreeMap::new(), 24 * 3600)?
            .id;
        let mut run = Run {
            ns,
            id,
            req: &req,
            escape: df.escape,
            tx,
            meta_args: Vars::new(),
            lease: lease.clone(),
            keys: Vec::new(),
            step: 0,
            steps: 0,
            done: BTreeMap::new(),
            names: BTreeMap::new(),
            mounts: 0,
        };
        let r = self.build_stages(&mut run, &globals, &stages).await;
        let _ = self.store.lease_delete(ns, &lease);
        let _ = std::fs::remove_dir_all(self.work.join(&run.id));
        r
    }

    async fn build_stages(
        self: &Arc<Self>,
        run: &mut Run<'_>,
        globals: &[Instruction],
        stages: &[StageDef],
    ) -> Result<(), BuildError> {
        for g in globals {
            for (k, v) in self.arg_values(run, g, &run.meta_args.clone(), &run.meta_args.clone())? {
                run.meta_args.insert(k, v);
            }
        }
        for (n, s) in stages.iter().enumerate() {
            if let Some(name) = &s.name {
                run.names.insert(name.clone(), n);
            }
        }
        let target = if run.req.target.is_empty() {
            stages.len() - 1
        } else {
            *run.names
                .get(&run.req.target.to_ascii_lowercase())
                .ok_or_else(|| {
                    BuildError::Invalid(format!(
                        "target stage {:?} could not be found",
                        run.req.target
                    ))
                })?
        };
        let needed = self.needed(run, stages, target)?;
        run.steps = needed.iter().map(|&n| 1 + stages[n].body.len()).sum();
        std::fs::create_dir_all(self.work.join(&run.id))
            .map_err(io("create", self.work.join(&run.id)))?;
        for &n in &needed {
            let state = self.stage(run, n, &stages[n]).await?;
            run.done.insert(n, state);
        }
        let mut last = run.done.remove(&target).expect("the target was built");
        if !run.req.labels.is_empty() {
            let c = config::inner(&mut last.config);
            if !c.get("Labels").is_some_and(|l| l.is_object()) {
                c.insert("Labels".into(), json!({}));
            }
            for (k, v) in &run.req.labels {
                c["Labels"][k] = json!(v);
            }
            last = self.write_state(run, last.config, last.layers).await?;
        }
        let store = self.store.clone();
        let (ns, tags, target_desc, keys) = (
            run.ns.to_string(),
            run.req.tags.clone(),
            last.manifest.clone(),
            run.keys.clone(),
        );
        tokio::task::spawn_blocking(move || {
            for t in &tags {
                store.put(
                    &ns,
                    &Image {
                        name: t.clone(),
                        target: target_desc.clone(),
                        created: berth_rules::time::now_secs(),
                        labels: BTreeMap::new(),
                    },
                )?;
            }
            build_cache::own(&store, &ns, &keys, &target_desc.digest)
        })
        .await
        .map_err(worker)??;
        for t in &run.req.tags {
            self.manager.publish(run.ns, "/images/create", t, "", 0, 0);
        }
        let id = last.id();
        self.say(run, format!("Successfully built {}", short_id(&id)))
            .await;
        for t in &run.req.tags {
            self.say(run, format!("Successfully tagged {t}")).await;
        }
        let _ = run
            .tx
            .send(Ok(Event::Done {
                id,
                manifest: last.manifest.digest.to_string(),
            }))
            .await;
        Ok(())
    }

    pub(super) async fn say(&self, run: &Run<'_>, line: String) {
        let _ = run.tx.send(Ok(Event::Line(line))).await;
    }

    /// The stages `target` needs, itself last, in Dockerfile order.
    fn needed(
        &self,
        run: &Run<'_>,
        stages: &[StageDef],
        target: usize,
    ) -> Result<Vec<usize>, BuildError> {
        let mut need = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(n) = todo.pop() {
            if !need.insert(n) {
                continue;
            }
            let s = &stages[n];
            let base = self.base_ref(run, &s.from)?;
            let mut refs = vec![base];
            refs.extend(
                s.body
                    .iter()
                    .filter_map(|i| i.flag("from").map(str::to_ascii_lowercase)),
            );
            for r in refs {
                let dep = run
                    .names
                    .get(&r.to_ascii_lowercase())
                    .copied()
                    .or_else(|| r.parse::<usize>().ok().filter(|&i| i < n));
                if let Some(d) = dep.filter(|&d| d < n) {
                    todo.push(d);
                }
            }
        }
        Ok(need.into_iter().collect())
    }

    /// FROM's image, variables expanded with the global ARGs.
    fn base_ref(&self, run: &Run<'_>, from: &Instruction) -> Result<String, BuildError> {
        let first = from.args.split_whitespace().next().unwrap_or("");
        expand::word(first, &run.meta_args, run.escape).map_err(|e| step_err(from, e))
    }

    /// ARG's name=value pairs: the --build-arg, else the default (expanded
    /// with `vars`), else a global ARG of that name (`meta`).
    fn arg_values(
        &self,
        run: &Run<'_>,
        i: &Instruction,
        vars: &Vars,
        meta: &Vars,
    ) -> Result<Vec<(String, String)>, BuildError> {
        let mut out = Vec::new();
        for w in i.args.split_whitespace() {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (
                    n,
                    Some(expand::word(d, vars, run.escape).map_err(|e| step_err(i, e))?),
                ),
                None => (w, None),
            };
            if name.is_empty() {
                return Err(step_err(i, "ARG names must not be empty"));
            }
            let v = run
                .req
                .build_args
                .get(name)
                .cloned()
                .or(default)
                .or_else(|| meta.get(name).cloned());
            if let Some(v) = v {
                out.push((name.to_string(), v));
            }
        }
        Ok(out)
    }

    async fn stage(
        self: &Arc<Self>,
        run: &mut Run<'_>,
        n: usize,
        s: &StageDef,
    ) -> Result<State, BuildError> {
        run.step += 1;
        self.say(
            run,
            format!("Step {}/{} : {}", run.step, run.steps, s.from.original),
        )
        .await;
        s.from.check_flags(&["platform"])?;
        let base = self.base_ref(run, &s.from)?;
        let platform = match s.from.flag("platform") {
            Some(p) => {
                let p = expand::word(p, &run.meta_args, run.escape)
                    .map_err(|e| step_err(&s.from, e))?;
                Platform::parse(&p).ok_or_else(|| {
                    step_err(&s.from, format!("--platform={p}: want os/arch[/variant]"))
                })?
            }
            None => Platform::host(),
        };
        let mut state = if base.eq_ignore_ascii_case("scratch") {
            self.scratch(run, &platform).await?
        } else if let Some(&d) = run.names.get(&base.to_ascii_lowercase()) {
            if d >= n {
                return Err(step_err(
                    &s.from,
                    format!("stage {base} is not defined before this one"),
                ));
            }
            run.done
                .get(&d)
                .cloned()
                .expect("needed stages are built first")
        } else {
            self.image_state(run, &s.from, &base, &platform).await?
        };
        self.say(run, format!(" ---> {}", short_id(&state.id())))
            .await;
        let mut args = Vars::new();
        let mut cmd_set = false;
        // ONBUILD triggers of the base run first, then leave the config.
        let triggers: Vec<String> = state.config["config"]["OnBuild"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        if !triggers.is_empty() {
            config::inner(&mut state.config).insert("OnBuild".into(), Value::Null);
            for t in triggers {
                let df = dockerfile::parse(&t)?;
                for mut i in df.instructions {
                    i.line = s.from.line;
                    self.say(run, format!(" ---> Running ONBUILD trigger {}", i.original))
                        .await;
                    state = self
                        .instruction(run, &i, state, &mut args, &mut cmd_set)
                        .await?;
                }
            }
        }
        for i in &s.body {
            run.step += 1;
            self.say(
                run,
                format!("Step {}/{} : {}", run.step, run.steps, i.original),
            )
            .await;
            state = self
                .instruction(run, i, state, &mut args, &mut cmd_set)
                .await?;
            if i.keyword != "ARG" {
                self.say(run, format!(" ---> {}", short_id(&state.id())))
                    .await;
            }
        }
        Ok(state)
    }

    /// One instruction on `state`: its result, from the cache or made.
    async fn instruction(
        self: &Arc<Self>,
        run: &mut Run<'_>,
        i: &Instruction,
        state: State,
        args: &mut Vars,
        cmd_set: &mut bool,
    ) -> Result<State, BuildError> {
        match i.keyword.as_str() {
            "ARG" => {
                let vars = config::vars(&state.config, args);
                for (k, v) in self.arg_values(run, i, &vars, &run.meta_args)? {
                    args.insert(k, v);
                }
                // Declared without any value: known, empty for RUN.
                for w in i.args.split_whitespace() {
                    let name = w.split_once('=').map_or(w, |(n, _)| n);
                    args.entry(name.to_string()).or_default();
                }
                Ok(state)
            }
            "FROM" => Err(step_err(i, "FROM cannot be an ONBUILD trigger")),
            "RUN" => self.run_step(run, i, state, args).await,
            "COPY" | "ADD" => self.copy_step(run, i, state, args).await,
            "WORKDIR" => {
                // One step: the config change and the directory it makes.
                let key =
                    build_cache::key(&state.manifest.digest, &i.original, &Self::arg_inputs(args));
                if let Some(s) = self.cached(run, &key).await? {
                    return Ok(s);
                }
                let s = self.config_apply(run, i, state, args, cmd_set).await?;
                let s = self.workdir_step(run, i, s).await?;
                self.remember(run, &key, &s)?;
                Ok(s)
            }
            _ => self.config_step(run, i, state, args, cmd_set).await,
        }
    }

    /// The inputs every step's key includes: the build arguments in scope.
    fn arg_inputs(args: &Vars) -> String {
        args.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// The cached result of a step, unless --no-cache.
    pub(super) async fn cached(
        &self,
        run: &mut Run<'_>,
        key: &Digest,
    ) -> Result<Option<State>, BuildError> {
        if run.req.no_cache {
            return Ok(None);
        }
        let Some(e) = build_cache::get(&self.store, run.ns, key)? else {
            return Ok(None);
        };
        let s = self.load_desc(e.target).await?;
        // Its snapshot may have been collected: make it again from the layers.
        if s.chain()
            .is_some_and(|c| !self.store.snapshots.exists(run.ns, &c).unwrap_or(false))
        {
            let (store, ns, img) = (self.store.clone(), run.ns.to_string(), s.image());
            tokio::task::spawn_blocking(move || store.unpack(&ns, &img, &Platform::host()))
                .await
                .map_err(worker)??;
        }
        self.hold(run, &s.manifest.digest)?;
        run.keys.push(key.clone());
        self.say(run, " ---> Using cache".into()).await;
        Ok(Some(s))
    }

    pub(super) fn remember(
        &self,
        run: &mut Run<'_>,
        key: &Digest,
        s: &State,
    ) -> Result<(), BuildError> {
        build_cache::put(&self.store, run.ns, key, &s.manifest)?;
        run.keys.push(key.clone());
        Ok(())
    }

    async fn config_step(
        &self,
        run: &mut Run<'_>,
        i: &Instruction,
        state: State,
        args: &Vars,
        cmd_set: &mut bool,
    ) -> Result<State, BuildError> {
        let key = build_cache::key(&state.manifest.digest, &i.original, &Self::arg_inputs(args));
        // CMD in this stage matters to a later ENTRYPOINT even on a hit.
        if i.keyword == "CMD" {
            *cmd_set = true;
        }
        if let Some(s) = self.cached(run, &key).await? {
            return Ok(s);
        }
        let s = self.config_apply(run, i, state, args, cmd_set).await?;
        self.remember(run, &key, &s)?;
        Ok(s)
    }

    /// A config instruction's new image, made (no cache).
    async fn config_apply(
        &self,
        run: &Run<'_>,
        i: &Instruction,
        state: State,
        args: &Vars,
        cmd_set: &mut bool,
    ) -> Result<State, BuildError> {
        let mut c = state.config.clone();
        let mut scope = Scope {
            args,
            escape: run.escape,
            cmd_set,
        };
        let created_by = config::apply(i, &mut c, &mut scope)?;
        push_history(&mut c, &created_by, true);
        self.write_state(run, c, state.layers).await
    }

    /// WORKDIR makes its directory when the image lacks it, in a layer.
    async fn workdir_step(
        &self,
        run: &mut Run<'_>,
        i: &Instruction,
        state: State,
    ) -> Result<State, BuildError> {
        let dir = state.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_string();
        let (key, m) = self.mount_step(run, &state)?;
        if m.is_dir(&dir) {
            drop(m);
            self.store
                .snapshots
                .remove(run.ns, &key)
                .map_err(ImageError::from)?;
            return Ok(state);
        }
        let made = m.ensure_dir(&dir, None).map(drop);
        drop(m);
        if let Err(e) = made {
            let _ = self.store.snapshots.remove(run.ns, &key);
            return Err(step_err(i, e));
        }
        // The config step's history entry now has a layer.
        let mut s = state;
        if let Some(last) = s.config["history"]
            .as_array_mut()
            .and_then(|h| h.last_mut())
        {
            last.as_object_mut().map(|o| o.remove("empty_layer"));
        }
        self.layer_step(run, s, key, &[], None).await
    }

    async fn run_step(
        self: &Arc<Self>,
        run: &mut Run<'_>,
        i: &Instruction,
        state: State,
        args: &Vars,
    ) -> Result<State, BuildError> {
        i.check_flags(&["network"])?;
        let network = match i.flag("network") {
            None | Some("default") => run.req.network.clone(),
            Some("none") => "none".into(),
            Some("host") => "host".into(),
            Some(n) => {
                return Err(step_err(
                    i,
                    format!("--network={n}: must be default, none or host"),
                ))
            }
        };
        let argv = config::command_vec(&i.command(), &state.config);
        if argv.is_empty() {
            return Err(step_err(i, "RUN needs a command"));
        }
        let env_names: Vec<String> = config::env_of(&state.config)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut env: Vec<String> = args
            .iter()
            .filter(|(k, _)| !env_names.contains(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !env_names.iter().any(|k| k == "PATH") && !args.contains_key("PATH") {
            env.push(format!("PATH={}", super::run::DEFAULT_PATH));
        }
        let key = build_cache::key(
            &state.manifest.digest,
            &format!("{} network={network}", i.original),
            &Self::arg_inputs(args),
        );
        if let Some(s) = self.cached(run, &key).await? {
            return Ok(s);
        }
        let log = self
            .work
            .join(&run.id)
            .join(format!("run-{}.log", run.step));
        let (snap, bound) = super::run::run(
            &self.manager,
            run.ns,
            super::run::Run {
                image: state.image(),
                argv: argv.clone(),
                env,
                network: &network,
                log: &log,
                line: i.line,
            },
            run.tx,
        )
        .await?;
        let _ = std::fs::remove_file(&log);
        let created_by = match i.command() {
            Command::Exec(v) => format!("RUN {}", serde_json::to_string(&v).unwrap_or_default()),
            Command::Shell(_) => argv.join(" "),
        };
        let skip: &'static [&'static str] = if bound { &super::run::BOUND_ETC } else { &[] };
        let s = self
            .layer_step(run, state, snap, skip, Some(created_by))
            .await?;
        self.remember(run, &key, &s)?;
        Ok(s)
    }
}
