//! From the raw TOML to a [`Suite`]: every key checked, with the file, line and key of what is wrong.

use super::*;

pub(super) struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) file: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        line_at(self.text, span.start)
    }

    fn err(&self, span: Option<&Range<usize>>, message: impl Into<String>) -> SuiteError {
        SuiteError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_of(s)),
            message: message.into(),
        }
    }

    pub(super) fn validate(&self, raw: RawSuite) -> Result<Suite, SuiteError> {
        let RawSuite {
            name,
            description,
            hardware,
            models: raw_models,
            engine,
            workload,
            backends: raw_backends,
            backend: raw_backend,
            serve: raw_serve,
        } = raw;
        let backends = self.backends(raw_backends.as_ref())?;
        let backend_settings = self.backend_settings(&raw_backend)?;
        for (kind, s) in &backend_settings {
            if *kind == BackendKind::OpenAi && s.base_url.is_none() && backends.contains(kind) {
                let span = raw_backend.get("openai").map(|b| b.span());
                return Err(self.err(
                    span.as_ref(),
                    "`[backend.openai]` needs `base_url = \"http://HOST:PORT/v1\"` (tokbench attaches to a running endpoint)",
                ));
            }
        }
        // Ollama and OpenAI endpoints serve models by name; so does a vLLM that tokbench
        // attaches to (one it starts serves the suite's model file).
        for needs_model in [BackendKind::Ollama, BackendKind::OpenAi, BackendKind::Vllm] {
            if backends.contains(&needs_model)
                && backend_settings.get(&needs_model).is_some_and(|s| {
                    s.model.is_none() && (needs_model != BackendKind::Vllm || s.base_url.is_some())
                })
            {
                let span = raw_backend.get(needs_model.name()).map(|b| b.span());
                return Err(self.err(
                    span.as_ref(),
                    format!("`[backend.{needs_model}]` needs `model = \"NAME\"`: the model the server serves"),
                ));
            }
        }
        if backends.contains(&BackendKind::Ollama)
            && !backend_settings.contains_key(&BackendKind::Ollama)
        {
            return Err(self.err(
                raw_backends.as_ref().map(|b| b.span()).as_ref(),
                "backend `ollama` needs a `[backend.ollama]` table with `model` (an Ollama model name, e.g. \"llama3.2:1b\")",
            ));
        }
        if backends.contains(&BackendKind::OpenAi)
            && !backend_settings.contains_key(&BackendKind::OpenAi)
        {
            return Err(self.err(
                raw_backends.as_ref().map(|b| b.span()).as_ref(),
                "backend `openai` needs a `[backend.openai]` table with `base_url` and `model`",
            ));
        }
        let serve = self.serve(raw_serve.as_ref())?;
        let name = name.unwrap_or_else(|| {
            self.file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "suite".into())
        });
        let hardware = match hardware {
            None => None,
            Some(h) if h.get_ref().trim().is_empty() => {
                return Err(self.err(
                    Some(&h.span()),
                    "key `hardware`: empty; name a catalog entry (`tokbench hardware` lists them) or leave the key out",
                ))
            }
            Some(h) => Some(SuiteHardware {
                name: h.get_ref().trim().to_string(),
                line: self.line_of(&h.span()),
            }),
        };
        if raw_models.is_empty() {
            return Err(self.err(None, "no `[[model]]`: a suite needs at least one model"));
        }
        let mut models = Vec::new();
        for m in &raw_models {
            models.extend(self.model(m)?);
        }
        let engines = self.engine(&engine)?;
        if backends.contains(&BackendKind::Engine) {
            self.engine_can_place(&engine, &engines)?;
        }
        let Some(workload) = workload else {
            return Err(self.err(
                None,
                "no `[workload]`: a suite needs `[workload] tests = [...]`",
            ));
        };
        let wspan = workload.span();
        let RawWorkload {
            tests: raw_tests,
            depths,
            repetitions,
            warmup,
            timeout_s,
            memory_limit_mb,
        } = workload.into_inner();
        if raw_tests.get_ref().is_empty() {
            return Err(self.err(Some(&raw_tests.span()), "key `tests`: the list is empty"));
        }
        let depths: Vec<u32> = match &depths {
            None => vec![0],
            Some(d) if d.get_ref().is_empty() => {
                return Err(self.err(Some(&d.span()), "key `depths`: the list is empty"))
            }
            Some(d) => d
                .get_ref()
                .iter()
                .map(|v| {
                    u32::try_from(*v.get_ref()).map_err(|_| {
                        self.err(
                            Some(&v.span()),
                            format!(
                                "key `depths`: {} is not a token count (0 or more)",
                                v.get_ref()
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if raw_tests.get_ref().len().saturating_mul(depths.len()) > Suite::MAX_CELLS {
            return Err(self.err(
                Some(&wspan),
                format!(
                    "`[workload]`: {} tests × {} depths is more than the {} cells a suite may have",
                    raw_tests.get_ref().len(),
                    depths.len(),
                    Suite::MAX_CELLS
                ),
            ));
        }
        let mut tests = Vec::new();
        for t in raw_tests.get_ref() {
            let spec: TestSpec = t
                .get_ref()
                .parse()
                .map_err(|e| self.err(Some(&t.span()), format!("key `tests`: {e}")))?;
            if spec.n_depth > 0 {
                tests.push(spec);
            } else {
                for &d in &depths {
                    tests.push(TestSpec { n_depth: d, ..spec });
                }
            }
        }
        let (repetitions, auto_repetitions) = match repetitions {
            None => (Suite::DEFAULT_REPETITIONS, None),
            Some(r) => match r.get_ref() {
                RepetitionsValue::Word(w) if w == "auto" => {
                    (Suite::DEFAULT_REPETITIONS, Some(AutoRepetitions::default()))
                }
                RepetitionsValue::Word(w) => {
                    return Err(self.err(
                        Some(&r.span()),
                        format!("key `repetitions`: \"{w}\" is neither a number nor \"auto\""),
                    ))
                }
                RepetitionsValue::Count(c) => match u32::try_from(*c) {
                    Ok(n @ 1..=10_000) => (n, None),
                    _ => {
                        return Err(self.err(
                            Some(&r.span()),
                            format!("key `repetitions`: {c} is not between 1 and 10000"),
                        ))
                    }
                },
            },
        };
        let timeout_s = match timeout_s {
            None => Suite::DEFAULT_TIMEOUT_S,
            Some(t) if t.get_ref().is_finite() && *t.get_ref() > 0.0 => *t.get_ref(),
            Some(t) => {
                return Err(self.err(
                    Some(&t.span()),
                    format!(
                        "key `timeout_s`: {} is not a positive number of seconds",
                        t.get_ref()
                    ),
                ))
            }
        };
        let memory_limit_mb = match memory_limit_mb {
            None => None,
            Some(m) => match u64::try_from(*m.get_ref()) {
                Ok(n @ 1..) => Some(n),
                _ => {
                    return Err(self.err(
                        Some(&m.span()),
                        format!(
                            "key `memory_limit_mb`: {} is not a positive number of MiB",
                            m.get_ref()
                        ),
                    ))
                }
            },
        };
        for t in &tests {
            if t.n_depth > 0 {
                if let Some(b) = backends.iter().find(|b| b.is_server()) {
                    return Err(self.err(
                        Some(&wspan),
                        format!(
                            "test `{}`: backend `{b}` is measured by requests, which process their whole prompt; a depth (a KV cache filled before the test) is an engine and llama-bench test. Use `pp{}` for a prompt of that length",
                            t.label(),
                            t.n_depth + t.n_prompt
                        ),
                    ));
                }
            }
            if t.n_prompt > 0 && t.n_gen > 0 && backends.contains(&BackendKind::LlamaBench) {
                return Err(self.err(
                    Some(&wspan),
                    format!(
                        "test `{}`: llama-bench reports a pp+tg test as one rate over both phases; give `pp{}` and `tg{}` as separate tests",
                        t.label(),
                        t.n_prompt,
                        t.n_gen
                    ),
                ));
            }
        }
        let levels = serve.concurrency.len().max(1);
        let n_cells = [
            models.len(),
            backends.len(),
            engines.len(),
            tests.len(),
            levels,
        ]
        .into_iter()
        .try_fold(1usize, usize::checked_mul)
        .filter(|&n| n <= Suite::MAX_CELLS);
        if n_cells.is_none() {
            return Err(self.err(
                None,
                format!(
                    "the matrix of {} models × {} backends × {} engine settings × {} tests × {levels} concurrency levels is more than the {} cells a suite may have; split the suite",
                    models.len(),
                    backends.len(),
                    engines.len(),
                    tests.len(),
                    Suite::MAX_CELLS
                ),
            ));
        }
        Ok(Suite {
            name,
            description,
            hardware,
            file: self.file.to_path_buf(),
            models,
            engines,
            tests,
            repetitions,
            auto_repetitions,
            warmup: warmup.unwrap_or(true),
            timeout_s,
            memory_limit_mb,
            backends,
            backend_settings,
            serve,
        })
    }

    /// What the embedded engine cannot set ([`Offload::engine_cannot_place`]), refused
    /// before anything runs, at the key that asks for it.
    fn engine_can_place(&self, e: &RawEngine, engines: &[EngineAxes]) -> Result<(), SuiteError> {
        let Some((key, why)) = engines.iter().find_map(|a| a.offload.engine_cannot_place()) else {
            return Ok(());
        };
        let span = match key {
            "tensor_split" => e.tensor_split.as_ref(),
            _ => e.override_tensor.as_ref(),
        }
        .map(|s| s.span());
        Err(self.err(
            span.as_ref(),
            format!(
                "key `{key}`: {why}: run it with `backends = [\"llama-bench\"]` or `[\"llama-server\"]` (the engine's bindings cannot set it)"
            ),
        ))
    }

    fn backends(
        &self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Result<Vec<BackendKind>, SuiteError> {
        let Some(raw) = raw else {
            return Ok(vec![BackendKind::Engine]);
        };
        if raw.get_ref().is_empty() {
            return Err(self.err(Some(&raw.span()), "key `backends`: the list is empty"));
        }
        let mut out = Vec::new();
        for b in raw.get_ref() {
            let kind: BackendKind = b
                .get_ref()
                .parse()
                .map_err(|e| self.err(Some(&b.span()), format!("key `backends`: {e}")))?;
            if out.contains(&kind) {
                return Err(self.err(
                    Some(&b.span()),
                    format!("key `backends`: `{kind}` is listed twice"),
                ));
            }
            out.push(kind);
        }
        Ok(out)
    }

    fn backend_settings(
        &self,
        raw: &BTreeMap<String, Spanned<RawBackend>>,
    ) -> Result<BTreeMap<BackendKind, BackendSettings>, SuiteError> {
        let mut out = BTreeMap::new();
        for (name, table) in raw {
            let span = table.span();
            let kind: BackendKind = name
                .parse()
                .map_err(|e| self.err(Some(&span), format!("table `[backend.{name}]`: {e}")))?;
            let RawBackend {
                binary,
                args,
                base_url,
                model,
                api_key_env,
                startup_timeout_s,
                port,
            } = table.get_ref().clone();
            let port = match port {
                None => None,
                Some(p) if !kind.is_server() || kind == BackendKind::OpenAi => {
                    return Err(self.err(
                        Some(&p.span()),
                        format!("`[backend.{name}]` key `port`: only a server tokbench starts listens on a port"),
                    ))
                }
                Some(p) if base_url.is_some() => {
                    return Err(self.err(
                        Some(&p.span()),
                        format!("`[backend.{name}]` key `port`: with `base_url` tokbench attaches to a running server and starts none; give one or the other"),
                    ))
                }
                Some(p) => match u16::try_from(*p.get_ref()) {
                    Ok(n @ 1..) => Some(n),
                    _ => {
                        return Err(self.err(
                            Some(&p.span()),
                            format!("`[backend.{name}]` key `port`: {} is not a TCP port (1 to 65535)", p.get_ref()),
                        ))
                    }
                },
            };
            if kind.is_server() && base_url.is_none() {
                if let Some(a) = args
                    .iter()
                    .find(|a| matches!(a.split('=').next(), Some("--port" | "--host")))
                {
                    return Err(self.err(
                        Some(&span),
                        format!("`[backend.{name}]` key `args`: `{a}` is tokbench's to set (it polls the server there); use `port = N` for a fixed port"),
                    ));
                }
            }
            if let Some(url) = &base_url {
                let u = url.get_ref();
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(self.err(
                        Some(&url.span()),
                        format!("`[backend.{name}]` key `base_url`: `{u}` is not an http:// or https:// URL"),
                    ));
                }
            }
            if let Some(env) = &api_key_env {
                if env.is_empty() || env.contains('=') {
                    return Err(self.err(
                        Some(&span),
                        format!("`[backend.{name}]` key `api_key_env`: `{env}` is not an environment variable name"),
                    ));
                }
            }
            let startup_timeout_s = match startup_timeout_s {
                None => BackendSettings::DEFAULT_STARTUP_TIMEOUT_S,
                Some(t) if t.get_ref().is_finite() && *t.get_ref() > 0.0 => *t.get_ref(),
                Some(t) => {
                    return Err(self.err(
                        Some(&t.span()),
                        format!(
                            "`[backend.{name}]` key `startup_timeout_s`: {} is not a positive number of seconds",
                            t.get_ref()
                        ),
                    ))
                }
            };
            out.insert(
                kind,
                BackendSettings {
                    binary: binary.map(|b| self.resolve_path(&b)),
                    args,
                    base_url: base_url.map(|u| u.into_inner().trim_end_matches('/').to_string()),
                    model,
                    api_key_env,
                    startup_timeout_s,
                    port,
                },
            );
        }
        Ok(out)
    }

    /// A path as written in the suite: `~/` expands, relative paths are the suite folder's.
    /// A bare program name (no `/`) is left for `PATH`.
    fn resolve_path(&self, p: &str) -> PathBuf {
        if !p.contains('/') {
            return PathBuf::from(p);
        }
        if let (Some(rest), Some(home)) = (p.strip_prefix("~/"), std::env::var_os("HOME")) {
            return PathBuf::from(home).join(rest);
        }
        let path = PathBuf::from(p);
        if path.is_absolute() {
            path
        } else {
            self.file.parent().map(|d| d.join(&path)).unwrap_or(path)
        }
    }

    fn serve(&self, raw: Option<&Spanned<RawServe>>) -> Result<ServeWorkload, SuiteError> {
        let mut out = ServeWorkload::default();
        let Some(raw) = raw else {
            return Ok(out);
        };
        let RawServe {
            concurrency,
            request_rate,
            requests_per_stream,
            ignore_eos,
        } = raw.get_ref();
        if let Some(c) = concurrency {
            let values: Vec<i64> = match c.get_ref() {
                OneOrMany::One(v) => vec![*v],
                OneOrMany::Many(v) => v.clone(),
            };
            if values.is_empty() {
                return Err(self.err(Some(&c.span()), "key `concurrency`: the list is empty"));
            }
            out.concurrency = values
                .iter()
                .map(|v| match u32::try_from(*v) {
                    Ok(n @ 1..=4096) => Ok(n),
                    _ => Err(self.err(
                        Some(&c.span()),
                        format!("key `concurrency`: {v} is not between 1 and 4096 streams"),
                    )),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(r) = request_rate {
            let v = *r.get_ref();
            if !(v.is_finite() && v > 0.0) {
                return Err(self.err(
                    Some(&r.span()),
                    format!(
                        "key `request_rate`: {v} is not a positive number of requests per second"
                    ),
                ));
            }
            if concurrency.is_some() {
                return Err(self.err(
                    Some(&r.span()),
                    "`[serve]`: give `concurrency` (closed-loop streams) or `request_rate` (Poisson arrivals), not both",
                ));
            }
            out.request_rate = Some(v);
        }
        if let Some(n) = requests_per_stream {
            out.requests_per_stream = match u32::try_from(*n.get_ref()) {
                Ok(n @ 1..=100_000) => Some(n),
                _ => {
                    return Err(self.err(
                        Some(&n.span()),
                        format!(
                            "key `requests_per_stream`: {} is not between 1 and 100000",
                            n.get_ref()
                        ),
                    ))
                }
            };
        }
        if let Some(i) = ignore_eos {
            out.ignore_eos = *i;
        }
        Ok(out)
    }

    fn model(&self, m: &Spanned<RawModel>) -> Result<Vec<ModelSource>, SuiteError> {
        let span = m.span();
        let RawModel {
            synth,
            path,
            seed,
            quants,
            name: _,
        } = m.get_ref();
        match (synth, path) {
            (Some(_), Some(_)) | (None, None) => Err(self.err(
                Some(&span),
                "`[[model]]` needs exactly one of `synth = \"PRESET\"` or `path = \"FILE.gguf\"`",
            )),
            (Some(arch), None) => {
                if ArchSpec::preset(arch.get_ref()).is_none() {
                    let known: Vec<&str> = ArchSpec::presets()
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect();
                    return Err(self.err(
                        Some(&arch.span()),
                        format!(
                            "key `synth`: unknown architecture preset `{}` (known: {})",
                            arch.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
                let Some(quants) = quants else {
                    return Err(self.err(
                        Some(&span),
                        "key `quants`: a synthesized model needs `quants = [\"Q8_0\", ...]`",
                    ));
                };
                if quants.get_ref().is_empty() {
                    return Err(self.err(Some(&quants.span()), "key `quants`: the list is empty"));
                }
                quants
                    .get_ref()
                    .iter()
                    .map(|q| {
                        let quant = q
                            .get_ref()
                            .parse::<QuantPreset>()
                            .map_err(|e| self.err(Some(&q.span()), format!("key `quants`: {e}")))?;
                        Ok(ModelSource::Synth {
                            arch: arch.get_ref().clone(),
                            seed: seed.unwrap_or(0),
                            quant,
                        })
                    })
                    .collect()
            }
            (None, Some(p)) => {
                if let Some(q) = quants {
                    return Err(self.err(
                        Some(&q.span()),
                        "key `quants`: only a synthesized model takes `quants`; a file's quantization is read from the file",
                    ));
                }
                if p.get_ref().trim().is_empty() {
                    return Err(self.err(Some(&p.span()), "key `path`: empty path"));
                }
                let written = PathBuf::from(p.get_ref());
                let path = if written.is_relative() {
                    self.file
                        .parent()
                        .map(|d| d.join(&written))
                        .unwrap_or(written)
                } else {
                    written
                };
                Ok(vec![ModelSource::File { path }])
            }
        }
    }

    fn ints(
        &self,
        v: &Option<Spanned<OneOrMany<i64>>>,
        key: &str,
        default: Option<u32>,
        range: Range<i64>,
    ) -> Result<Vec<Option<u32>>, SuiteError> {
        let Some(v) = v else {
            return Ok(vec![default]);
        };
        let values = v.get_ref().to_vec();
        if values.is_empty() {
            return Err(self.err(Some(&v.span()), format!("key `{key}`: the list is empty")));
        }
        values
            .into_iter()
            .map(|x| {
                if range.contains(&x) {
                    Ok(Some(x as u32))
                } else {
                    Err(self.err(
                        Some(&v.span()),
                        format!(
                            "key `{key}`: {x} is out of range ({}..={})",
                            range.start,
                            range.end - 1
                        ),
                    ))
                }
            })
            .collect()
    }

    /// A key of text values each parsed as `T`, or `[default]` when the key is absent.
    fn parsed<T: std::str::FromStr>(
        &self,
        v: &Option<Spanned<OneOrMany<String>>>,
        key: &str,
        default: T,
    ) -> Result<Vec<T>, SuiteError>
    where
        T::Err: std::fmt::Display,
    {
        let Some(v) = v else {
            return Ok(vec![default]);
        };
        let values = v.get_ref().to_vec();
        if values.is_empty() {
            return Err(self.err(Some(&v.span()), format!("key `{key}`: the list is empty")));
        }
        values
            .iter()
            .map(|s| {
                s.parse::<T>()
                    .map_err(|e| self.err(Some(&v.span()), format!("key `{key}`: {e}")))
            })
            .collect()
    }

    fn engine(&self, e: &RawEngine) -> Result<Vec<EngineAxes>, SuiteError> {
        let d = EngineAxes::default();
        let threads = self.ints(&e.threads, "threads", d.n_threads, 1..1025)?;
        let batch = self.ints(&e.batch, "batch", Some(d.n_batch), 1..1_048_577)?;
        let ubatch = self.ints(&e.ubatch, "ubatch", Some(d.n_ubatch), 1..1_048_577)?;
        let ngl = self.ints(
            &e.n_gpu_layers,
            "n_gpu_layers",
            Some(d.n_gpu_layers),
            0..10_000,
        )?;
        let fa = match &e.flash_attn {
            None => vec![d.flash_attn],
            Some(v) => {
                let vals = v.get_ref().to_vec();
                if vals.is_empty() {
                    return Err(self.err(Some(&v.span()), "key `flash_attn`: the list is empty"));
                }
                vals
            }
        };
        let o = d.offload;
        let ctk = self.parsed(&e.cache_type_k, "cache_type_k", d.type_k)?;
        let ctv = self.parsed(&e.cache_type_v, "cache_type_v", d.type_v)?;
        let n_cpu_moe = self.ints(&e.n_cpu_moe, "n_cpu_moe", Some(o.n_cpu_moe), 0..10_000)?;
        let split_mode = self.parsed(&e.split_mode, "split_mode", o.split_mode)?;
        let main_gpu = self.ints(
            &e.main_gpu,
            "main_gpu",
            Some(o.main_gpu),
            0..MAX_DEVICES as i64,
        )?;
        let tensor_split = self.parsed(&e.tensor_split, "tensor_split", o.tensor_split)?;
        let overrides = self.parsed(&e.override_tensor, "override_tensor", o.overrides)?;
        let axes = [
            threads.len(),
            batch.len(),
            ubatch.len(),
            ngl.len(),
            fa.len(),
            ctk.len(),
            ctv.len(),
            n_cpu_moe.len(),
            split_mode.len(),
            main_gpu.len(),
            tensor_split.len(),
            overrides.len(),
        ];
        // Checked before the product is built: a few long lists multiply past any memory.
        if axes
            .into_iter()
            .try_fold(1usize, usize::checked_mul)
            .is_none_or(|n| n > Suite::MAX_CELLS)
        {
            return Err(self.err(
                None,
                format!(
                    "`[engine]`: the lists multiply to more than the {} cells a suite may have ({})",
                    Suite::MAX_CELLS,
                    axes.map(|n| n.to_string()).join(" × ")
                ),
            ));
        }
        if let Some(bad) = ctv.iter().find(|t| t.is_quantized()) {
            if fa.contains(&false) {
                return Err(self.err(
                    e.cache_type_v.as_ref().map(|s| s.span()).as_ref(),
                    format!(
                        "key `cache_type_v`: a quantized V cache ({bad}) needs `flash_attn = true` in llama.cpp"
                    ),
                ));
            }
        }
        // The product, the first key outermost: a suite that leaves the later keys at one
        // value keeps its cells' order and indexes as they were before those keys existed.
        let mut out = vec![EngineAxes {
            use_mmap: e.mmap.unwrap_or(d.use_mmap),
            ..d
        }];
        expand(&mut out, &threads, |a, &v| a.n_threads = v);
        expand(&mut out, &batch, |a, v| a.n_batch = v.unwrap_or(d.n_batch));
        expand(&mut out, &ubatch, |a, v| {
            a.n_ubatch = v.unwrap_or(d.n_ubatch)
        });
        expand(&mut out, &ngl, |a, v| {
            a.n_gpu_layers = v.unwrap_or(d.n_gpu_layers)
        });
        expand(&mut out, &fa, |a, &v| a.flash_attn = v);
        expand(&mut out, &ctk, |a, &v| a.type_k = v);
        expand(&mut out, &ctv, |a, &v| a.type_v = v);
        expand(&mut out, &n_cpu_moe, |a, v| {
            a.offload.n_cpu_moe = v.unwrap_or(o.n_cpu_moe)
        });
        expand(&mut out, &split_mode, |a, &v| a.offload.split_mode = v);
        expand(&mut out, &main_gpu, |a, v| {
            a.offload.main_gpu = v.unwrap_or(o.main_gpu)
        });
        expand(&mut out, &tensor_split, |a, &v| a.offload.tensor_split = v);
        expand(&mut out, &overrides, |a, &v| a.offload.overrides = v);
        Ok(out)
    }
}

/// Each of `out` once per value of an axis, in order: the product with the axes before.
fn expand<T>(out: &mut Vec<EngineAxes>, values: &[T], set: impl Fn(&mut EngineAxes, &T)) {
    *out = out
        .iter()
        .flat_map(|a| {
            values.iter().map(|v| {
                let mut a = *a;
                set(&mut a, v);
                a
            })
        })
        .collect();
}
