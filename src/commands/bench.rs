//! `lora-files bench`: performance figures on generated data, printed for
//! `docs/performance.md` (goals are checked here, never in timed tests).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use lora_files_format::build::{self, BuildOptions};
use lora_files_format::export::{self, ExportFormat, ExportOptions, Tokenizer};

use super::human_bytes;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Jobs per second drained by 1 and 2 workers, and a queued create against a direct one
    /// (PostgreSQL at --database-url, a throwaway database; local disk).
    Jobs {
        /// The catalogue (PostgreSQL), e.g. postgres://postgres@127.0.0.1:5432/lora_files_bench.
        #[arg(long)]
        database_url: String,
        /// Jobs queued for each worker count (creates of --size conversations).
        #[arg(long, default_value_t = 100)]
        jobs: usize,
        /// Conversations per created file.
        #[arg(long, default_value_t = 5)]
        size: usize,
        /// Creates timed each way for the overhead figure.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        #[arg(long, default_value = "tests/fixtures/enriched")]
        fixtures: PathBuf,
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Write N enriched conversations (copies of the bundled examples under new
    /// ids, 1 000 per sub-folder) into OUT, for scripts/scale.sh and your own trials.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        conversations: usize,
        #[arg(long, default_value = "tests/fixtures/enriched")]
        fixtures: PathBuf,
        out: PathBuf,
    },
    /// Time adding conversations to a stored file of N conversations (SQLite, local disk),
    /// next to a full build of the same conversations.
    Add {
        /// Sizes of the file, in conversations (comma-separated), each measured on its own store.
        #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000])]
        conversations: Vec<usize>,
        /// Conversations per add.
        #[arg(long, default_value_t = 10)]
        add: usize,
        /// Adds made to each file.
        #[arg(long, default_value_t = 10)]
        adds: usize,
        #[arg(long, default_value = "tests/fixtures/enriched")]
        fixtures: PathBuf,
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Import N raw conversations (copies of the bundled raw fixtures) and enrich them all
    /// (SQLite, local disk); prints conversations per second for each step.
    Enrich {
        #[arg(long, default_value_t = 1000)]
        conversations: usize,
        /// Raw LLM conversation files to copy.
        #[arg(long, default_value = "tests/fixtures/raw")]
        fixtures: PathBuf,
        /// The scaffolding seeds to load (NDJSON).
        #[arg(long, default_value = "tests/fixtures/scaffolding")]
        scaffolding: PathBuf,
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Validate a full file built from copies of the bundled examples, clean and
    /// with findings added, and print MB/s for each.
    Validate {
        /// Size of the full file to generate, in MB.
        #[arg(long, default_value_t = 500)]
        megabytes: u64,
        /// Findings to add to the second copy (each an odd `difficulty_level`).
        #[arg(long, default_value_t = 10_000)]
        findings: usize,
        #[arg(long, default_value = "tests/fixtures/enriched")]
        fixtures: PathBuf,
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Generate N enriched conversations, export them (tokens counted with o200k_base) and
    /// compare with `cat`; then count the tokens of the build's JSONL of them.
    Export {
        #[arg(long, default_value_t = 10_000)]
        conversations: usize,
        /// openai, sharegpt, alpaca or jsonl.
        #[arg(long, default_value = "openai")]
        format: String,
        #[arg(long, default_value = "tests/fixtures/enriched")]
        fixtures: PathBuf,
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Render the web UI's conversations page over a catalogue of N conversations
    /// (SQLite, local disk): the first page and a filtered page, over loopback HTTP.
    Ui {
        #[arg(long, default_value_t = 10_000)]
        conversations: usize,
        #[arg(long, default_value = "tests/fixtures/enriched")]
        fixtures: PathBuf,
        #[arg(long, default_value = "tests/fixtures/scaffolding")]
        scaffolding: PathBuf,
        /// Requests per page; the figures are the median and the fastest.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Generate N enriched conversations from the bundled examples, build them, compare with `cat`.
    Build {
        #[arg(long, default_value_t = 1000)]
        conversations: usize,
        /// Enriched conversation files to copy (each copy gets its own id).
        #[arg(long, default_value = "tests/fixtures/enriched")]
        fixtures: PathBuf,
        /// Where to put the generated inputs and outputs (default: a temporary folder, removed after).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
}

pub fn run(bench: Bench) -> anyhow::Result<ExitCode> {
    // Off unless asked for: RUST_LOG=lora_files_store=debug times each change's steps.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    match bench {
        Bench::Generate { conversations, fixtures, out } => {
            let bytes = generate_conversations(conversations, &fixtures, &out)?;
            println!("wrote {conversations} conversations ({}) into {}", human_bytes(bytes), out.display());
        }
        Bench::Build { conversations, fixtures, work_dir } => {
            let temp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| temp.path().to_owned());
            bench_build(conversations, &fixtures, &work)?;
        }
        Bench::Validate { megabytes, findings, fixtures, work_dir } => {
            let temp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| temp.path().to_owned());
            bench_validate(megabytes, findings, &fixtures, &work)?;
        }
        Bench::Export { conversations, format, fixtures, work_dir } => {
            let temp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| temp.path().to_owned());
            let format = ExportFormat::parse(&format).ok_or_else(|| anyhow::anyhow!("--format {format:?}: not one of openai, sharegpt, alpaca, jsonl"))?;
            bench_export(conversations, format, &fixtures, &work)?;
        }
        Bench::Enrich { conversations, fixtures, scaffolding, work_dir } => {
            let temp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| temp.path().to_owned());
            super::run_async(bench_enrich(conversations, fixtures, scaffolding, work))?;
        }
        Bench::Ui { conversations, fixtures, scaffolding, rounds, work_dir } => {
            let temp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| temp.path().to_owned());
            super::run_async(bench_ui(conversations, fixtures, scaffolding, rounds, work))?;
        }
        Bench::Jobs { database_url, jobs, size, rounds, fixtures, work_dir } => {
            let temp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| temp.path().to_owned());
            super::run_async(bench_jobs(database_url, jobs, size, rounds, fixtures, work))?;
        }
        Bench::Add { conversations, add, adds, fixtures, work_dir } => {
            let temp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| temp.path().to_owned());
            for size in conversations {
                super::run_async(bench_add(size, add, adds, &fixtures, &work.join(format!("n{size}"))))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Rounds of one `cat` and one build; each figure is the fastest of them.
const BUILD_RUNS: usize = 5;

fn bench_build(count: usize, fixtures: &Path, work: &Path) -> anyhow::Result<()> {
    let inputs = work.join("inputs");
    let generated = generate_conversations(count, fixtures, &inputs)?;
    println!("generated {count} conversations ({}) in {}", human_bytes(generated), inputs.display());

    // Every run starts from the same state: inputs in the page cache (the
    // first `cat` reads them in), no earlier output, and nothing waiting to
    // be written back to disk, which would slow whichever run came next.
    let settle = |output: &Path| -> anyhow::Result<()> {
        if output.is_dir() {
            std::fs::remove_dir_all(output)?;
        } else if output.exists() {
            std::fs::remove_file(output)?;
        }
        anyhow::ensure!(Command::new("sync").status()?.success(), "sync failed");
        std::thread::sleep(std::time::Duration::from_secs(1));
        Ok(())
    };
    let cat_out = work.join("cat.out");
    let cat = format!("find '{}' -name '*.json' -print0 | sort -z | xargs -0 cat > '{}'", inputs.display(), cat_out.display());
    let options = BuildOptions {
        name: "bench".into(),
        description: None,
        target_model: Some("bench-model".into()),
        vertical: None,
        jsonl_meta: false,
        now: chrono::DateTime::UNIX_EPOCH,
    };
    let out = work.join("out");
    // `cat` and the build take turns, so a slow spell of this shared VM
    // (they last minutes) slows both rather than one.
    let (mut cat_seconds, mut build_seconds, mut peak, mut summary) = (f64::INFINITY, f64::INFINITY, None, None);
    for run in 0..BUILD_RUNS {
        settle(&cat_out)?;
        let started = Instant::now();
        let status = Command::new("sh").arg("-c").arg(&cat).stdin(Stdio::null()).status()?;
        anyhow::ensure!(status.success(), "cat failed");
        cat_seconds = cat_seconds.min(started.elapsed().as_secs_f64());
        settle(&cat_out)?;

        settle(&out)?;
        reset_peak_rss();
        let started = Instant::now();
        let built = build::build(std::slice::from_ref(&inputs), &out, &options, |_| {})?;
        build_seconds = build_seconds.min(started.elapsed().as_secs_f64());
        // The first run's peak: later runs start with what the allocator kept from earlier ones.
        if run == 0 {
            peak = peak_rss_bytes();
        }
        summary = Some(built);
    }
    let summary = summary.expect("at least one run");

    let mb = |bytes: u64| bytes as f64 / 1e6;
    let input_mb = mb(summary.input_bytes);
    let output_mb = mb(summary.json_bytes + summary.jsonl_bytes);
    println!("conversations:   {}", summary.conversations);
    println!("input:           {input_mb:.1} MB");
    println!("output:          {output_mb:.1} MB (json {:.1} MB, jsonl {:.1} MB)", mb(summary.json_bytes), mb(summary.jsonl_bytes));
    println!("build:           {build_seconds:.2} s, {:.0} MB/s of input (fastest of {BUILD_RUNS})", input_mb / build_seconds);
    println!("cat:             {cat_seconds:.2} s, {:.0} MB/s (fastest of {BUILD_RUNS})", input_mb / cat_seconds);
    println!("build / cat:     {:.0} %", 100.0 * cat_seconds / build_seconds);
    match peak {
        Some(peak) => println!("peak RSS:        {:.1} MB", mb(peak)),
        None => println!("peak RSS:        unavailable (no /proc)"),
    }
    Ok(())
}

/// Rounds of validating each file; each figure is the fastest of them.
const VALIDATE_RUNS: usize = 3;

fn bench_validate(
    megabytes: u64,
    findings: usize,
    fixtures: &Path,
    work: &Path,
) -> anyhow::Result<()> {
    use lora_files_format::input::{self, Mode};

    let inputs = work.join("inputs");
    let options = BuildOptions {
        name: "clean".into(),
        description: None,
        target_model: Some("bench-model".into()),
        vertical: None,
        jsonl_meta: false,
        now: chrono::DateTime::UNIX_EPOCH,
    };
    // A sample build says how large a built conversation is, so the file comes out near `megabytes`.
    let sample = work.join("sample");
    generate_conversations(20, fixtures, &sample)?;
    let built = build::build(std::slice::from_ref(&sample), &work.join("sample-out"), &options, |_| {})?;
    let per_conversation = (built.json_bytes / 20).max(1);
    std::fs::remove_dir_all(&sample)?;
    std::fs::remove_dir_all(work.join("sample-out"))?;
    let count = usize::try_from(megabytes * 1_000_000 / per_conversation).unwrap_or(usize::MAX).max(1);
    generate_conversations(count, fixtures, &inputs)?;
    let clean = build::build(
        std::slice::from_ref(&inputs),
        &work.join("out"),
        &options,
        |_| {},
    )?
    .json_path;
    std::fs::remove_dir_all(&inputs)?;

    // The same file with `findings` pairs given a difficulty level the validator warns about.
    let with_findings = work.join("out/with-findings.json");
    let text = std::fs::read(&clean)?;
    let (needle, replacement) = (
        &b"\"difficulty_level\": \""[..],
        &b"\"difficulty_level\": \"odd_"[..],
    );
    let mut edited = Vec::with_capacity(text.len() + findings * replacement.len());
    let (mut rest, mut added) = (&text[..], 0);
    while added < findings {
        let Some(at) = rest.windows(needle.len()).position(|w| w == needle) else {
            break;
        };
        edited.extend_from_slice(&rest[..at]);
        edited.extend_from_slice(replacement);
        rest = &rest[at + needle.len()..];
        added += 1;
    }
    edited.extend_from_slice(rest);
    drop(text);
    std::fs::write(&with_findings, &edited)?;
    drop(edited);

    println!("conversations:   {count}");
    for path in [&clean, &with_findings] {
        let bytes = std::fs::metadata(path)?.len();
        let mut seconds = f64::INFINITY;
        let mut report = None;
        for _ in 0..VALIDATE_RUNS {
            let started = Instant::now();
            report = Some(input::read_file(
                path,
                Mode::Validate,
                |_| Ok::<(), ()>(()),
            )?);
            seconds = seconds.min(started.elapsed().as_secs_f64());
        }
        let report = report.expect("at least one run");
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "{name:<20} {:.1} MB, {} error(s), {} warning(s): {seconds:.2} s, {:.0} MB/s (fastest of {VALIDATE_RUNS})",
            bytes as f64 / 1e6,
            report.findings.error_count(),
            report.findings.warning_count(),
            bytes as f64 / 1e6 / seconds
        );
    }
    Ok(())
}

/// Leaves the output gone and the disk idle before a timed run (see [`bench_build`]).
fn settle(output: &Path) -> anyhow::Result<()> {
    if output.is_dir() {
        std::fs::remove_dir_all(output)?;
    } else if output.exists() {
        std::fs::remove_file(output)?;
    }
    anyhow::ensure!(Command::new("sync").status()?.success(), "sync failed");
    std::thread::sleep(std::time::Duration::from_secs(1));
    Ok(())
}

fn bench_export(count: usize, format: ExportFormat, fixtures: &Path, work: &Path) -> anyhow::Result<()> {
    let inputs = work.join("inputs");
    let generated = generate_conversations(count, fixtures, &inputs)?;
    println!("generated {count} conversations ({}) in {}", human_bytes(generated), inputs.display());
    let cat_out = work.join("cat.out");
    let cat = format!("find '{}' -name '*.json' -print0 | sort -z | xargs -0 cat > '{}'", inputs.display(), cat_out.display());
    let options = |format| ExportOptions {
        format,
        name: "bench".into(),
        with_metadata: false,
        dedup: false,
        split: None,
        tokenizer: Some(Tokenizer::o200k()),
        max_tokens: None,
    };
    let out = work.join("out");
    let (mut cat_seconds, mut export_seconds, mut summary) = (f64::INFINITY, f64::INFINITY, None);
    for _ in 0..BUILD_RUNS {
        settle(&cat_out)?;
        let started = Instant::now();
        anyhow::ensure!(Command::new("sh").arg("-c").arg(&cat).stdin(Stdio::null()).status()?.success(), "cat failed");
        cat_seconds = cat_seconds.min(started.elapsed().as_secs_f64());
        settle(&cat_out)?;
        settle(&out)?;
        let started = Instant::now();
        let exported = export::export(std::slice::from_ref(&inputs), Some(&out), &options(format)).map_err(super::export::explain)?;
        export_seconds = export_seconds.min(started.elapsed().as_secs_f64());
        summary = Some(exported);
    }
    let summary = summary.expect("at least one run");
    // The same export without counting tokens: what rendering and writing cost alone.
    let mut plain_seconds = f64::INFINITY;
    for _ in 0..BUILD_RUNS {
        settle(&out)?;
        let started = Instant::now();
        export::export(std::slice::from_ref(&inputs), Some(&out), &ExportOptions { tokenizer: None, ..options(format) }).map_err(super::export::explain)?;
        plain_seconds = plain_seconds.min(started.elapsed().as_secs_f64());
    }

    // Token counting on its own: the build's JSONL of the same conversations, read and counted.
    let jsonl_dir = work.join("jsonl");
    let build_options = BuildOptions {
        name: "bench".into(),
        description: None,
        target_model: Some("bench-model".into()),
        vertical: None,
        jsonl_meta: false,
        now: chrono::DateTime::UNIX_EPOCH,
    };
    let built = build::build(std::slice::from_ref(&inputs), &jsonl_dir, &build_options, |_| {})?;
    let mut count_seconds = f64::INFINITY;
    let mut counted = None;
    for _ in 0..BUILD_RUNS {
        let started = Instant::now();
        let figures = export::export(std::slice::from_ref(&built.jsonl_path), None, &options(ExportFormat::Jsonl)).map_err(super::export::explain)?;
        count_seconds = count_seconds.min(started.elapsed().as_secs_f64());
        counted = figures.tokens;
    }

    let mb = |bytes: u64| bytes as f64 / 1e6;
    let input_mb = mb(summary.input_bytes);
    let output_bytes: u64 = summary.files.iter().map(|f| f.bytes).sum();
    println!("conversations:   {}", summary.totals.conversations);
    println!("input:           {input_mb:.1} MB; {} output {:.1} MB, {} lines", format.as_str(), mb(output_bytes), summary.examples);
    println!("export:          {export_seconds:.2} s, {:.0} MB/s of input (fastest of {BUILD_RUNS}, tokens counted)", input_mb / export_seconds);
    println!("cat:             {cat_seconds:.2} s, {:.0} MB/s (fastest of {BUILD_RUNS})", input_mb / cat_seconds);
    println!("export / cat:    {:.0} %", 100.0 * cat_seconds / export_seconds);
    println!("without tokens:  {plain_seconds:.2} s, {:.0} MB/s of input, {:.0} % of cat (fastest of {BUILD_RUNS})", input_mb / plain_seconds, 100.0 * cat_seconds / plain_seconds);
    let jsonl_mb = mb(built.jsonl_bytes);
    println!(
        "token counting:  {jsonl_mb:.1} MB of JSONL in {count_seconds:.2} s, {:.0} MB/s (fastest of {BUILD_RUNS}; read, checked, counted)",
        jsonl_mb / count_seconds
    );
    if let Some(tokens) = counted {
        println!("tokens:          {tokens}");
    }
    Ok(())
}

async fn bench_jobs(database_url: String, jobs: usize, size: usize, rounds: usize, fixtures: PathBuf, work: PathBuf) -> anyhow::Result<ExitCode> {
    use lora_files_store::jobs::worker::{WorkerSettings, Workers};
    use lora_files_store::{Access, JobState, Store, StoreConfig};

    let inputs = work.join("inputs");
    generate_conversations(size, &fixtures, &inputs)?;
    let files = lora_files_format::io::collect_input_files(std::slice::from_ref(&inputs))?;
    let mut config = StoreConfig::new(work.join("data"));
    config.database_url = Some(database_url);
    config.target_model = Some("bench-model".into());
    let store = Store::open(config, Access::Service).await?;
    // A fresh user per run, so runs on the same database do not meet.
    let owner = store.users().add(&format!("bench-{}@example.com", uuid::Uuid::new_v4().simple()), None).await?.id;
    let mut ids = Vec::with_capacity(files.len());
    for file in &files {
        let imported = store.conversations().import_enriched(&owner, &file.display().to_string(), std::fs::read(file)?.into()).await?;
        ids.push(imported.record().conversation_id.clone());
    }
    let settings = |workers| WorkerSettings { workers, ..WorkerSettings::default() };
    let mut name = 0;
    let mut next_name = || {
        name += 1;
        format!("bench {name}")
    };
    println!("{jobs} queued creates of {size} conversations each, drained by in-process workers (as `serve` or `lora-files worker` run them):");
    for workers in [1, 2] {
        let mut queued = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            queued.push(store.jobs().enqueue_create(&owner, &next_name(), None, &ids).await?.0.id);
        }
        let started = Instant::now();
        let running = Workers::spawn(store.clone(), settings(workers), None);
        for id in &queued {
            let job = store.jobs().wait(&owner, id, std::time::Duration::from_secs(600)).await?;
            anyhow::ensure!(job.state == JobState::Succeeded, "job {id} {}: {:?}", job.state.as_str(), job.error);
        }
        let seconds = started.elapsed().as_secs_f64();
        running.shutdown().await;
        println!("  {workers} worker(s): {seconds:.2} s, {:.1} jobs/s", jobs as f64 / seconds);
    }
    let (mut direct, mut through_queue) = (0.0, 0.0);
    let running = Workers::spawn(store.clone(), settings(1), None);
    for _ in 0..rounds {
        let started = Instant::now();
        store.training_files().create(&owner, &next_name(), None, &ids).await?;
        direct += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let (job, _) = store.jobs().enqueue_create(&owner, &next_name(), None, &ids).await?;
        let job = store.jobs().wait(&owner, &job.id, std::time::Duration::from_secs(600)).await?;
        anyhow::ensure!(job.state == JobState::Succeeded, "job {} {}: {:?}", job.id, job.state.as_str(), job.error);
        through_queue += started.elapsed().as_secs_f64();
    }
    running.shutdown().await;
    let (direct, through_queue) = (direct / rounds as f64 * 1000.0, through_queue / rounds as f64 * 1000.0);
    println!("create of {size} conversations, mean of {rounds}: direct {direct:.1} ms, queued (enqueue, an idle worker's claim, wait) {through_queue:.1} ms, overhead {:.1} ms", through_queue - direct);
    Ok(ExitCode::SUCCESS)
}

/// Files handed to the store at once by `bench add`'s import, as `lora-files import` does.
const IMPORT_BATCH: usize = 512;

async fn bench_add(base: usize, added: usize, adds: usize, fixtures: &Path, work: &Path) -> anyhow::Result<ExitCode> {
    use lora_files_store::conversations::ImportRequest;
    use lora_files_store::{Access, Store, StoreConfig};

    println!("== a file of {base} conversations, {adds} adds of {added}");
    let inputs = work.join("inputs");
    let generated = generate_conversations(base + added * adds, fixtures, &inputs)?;
    let mut files = lora_files_format::io::collect_input_files(std::slice::from_ref(&inputs))?;
    files.sort();
    println!("generated {} conversations ({})", files.len(), human_bytes(generated));
    let data = work.join("data");
    let mut config = StoreConfig::new(&data);
    config.target_model = Some("bench-model".into());
    config.max_object_bytes = 64 << 30;
    let store = Store::open(config, Access::Service).await?;
    let owner = store.users().add("bench@example.com", None).await?.id;

    let started = Instant::now();
    let mut ids = Vec::with_capacity(files.len());
    for batch in files.chunks(IMPORT_BATCH) {
        let mut requests = Vec::with_capacity(batch.len());
        for file in batch {
            requests.push(ImportRequest::new(file.display().to_string(), std::fs::read(file)?));
        }
        for answer in store.conversations().import_many(&owner, requests).await {
            ids.push(answer?.record().conversation_id.clone());
        }
    }
    let import_seconds = started.elapsed().as_secs_f64();

    // The offline engine on the same conversations, then the service.
    let options = BuildOptions { name: "bench".into(), description: None, target_model: Some("bench-model".into()), vertical: None, jsonl_meta: false, now: chrono::Utc::now() };
    settle(&work.join("out"))?;
    let (started, cpu_started) = (Instant::now(), process_cpu_seconds());
    build::build(&files[..base], &work.join("out"), &options, |_| {})?;
    let (build_seconds, build_cpu) = (started.elapsed().as_secs_f64(), process_cpu_seconds() - cpu_started);
    std::fs::remove_dir_all(work.join("out"))?;
    let (started, cpu_started) = (Instant::now(), process_cpu_seconds());
    let reserved = store.training_files().reserve(&owner, "bench", None, &ids[..base]).await?;
    let reserve_seconds = started.elapsed().as_secs_f64();
    let file = store.training_files().fill(&owner, &reserved.id, &ids[..base]).await?;
    let (create_seconds, create_cpu) = (started.elapsed().as_secs_f64(), process_cpu_seconds() - cpu_started);
    // The create leaves its export figures to a count after its commit; the
    // adds are timed once it is done, not beside it.
    let started = Instant::now();
    store.training_files().settle_figures(&owner, &file.id).await?;
    let figures_seconds = started.elapsed().as_secs_f64();

    let objects = data.join("objects").join("training-files").join(&file.id);
    let mut add_seconds = Vec::with_capacity(adds);
    let mut add_bytes = Vec::with_capacity(adds);
    let mut latest = file;
    for round in 0..adds {
        let before = tree_bytes(&objects)?;
        let chunk = &ids[base + round * added..base + (round + 1) * added];
        let started = Instant::now();
        latest = store.training_files().add(&owner, &latest.id, chunk).await?;
        add_seconds.push(started.elapsed().as_secs_f64());
        add_bytes.push(tree_bytes(&objects)?.saturating_sub(before));
    }
    let stored = tree_bytes(&objects)?;
    let latest_size = latest.json_file_size.unwrap_or(0) as u64 + latest.jsonl_file_size.unwrap_or(0) as u64;
    add_seconds.sort_by(f64::total_cmp);
    add_bytes.sort();
    store.close().await;

    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let slowest = add_seconds.last().copied().unwrap_or(0.0);
    println!("import:          {} files in {import_seconds:.2} s, {:.0} files/s (goal >= 3000: {})", files.len(), files.len() as f64 / import_seconds, verdict(files.len() as f64 / import_seconds >= 3000.0));
    println!("create:          {create_seconds:.2} s; lora-files build of the same {base}: {build_seconds:.2} s; create / build {:.2} (goal <= 1.5: {})", create_seconds / build_seconds, verdict(create_seconds / build_seconds <= 1.5));
    println!("                 of which {reserve_seconds:.2} s checking the request and reserving the name (RUST_LOG=lora_files_store=debug shows the rest)");
    println!("                 CPU time (all threads): create {create_cpu:.2} s, build {build_cpu:.2} s");
    println!("export figures:  counted in {figures_seconds:.2} s after the create (tokens of every member, in the background)");
    println!(
        "add {added}:          median {:.3} s, slowest {slowest:.3} s of {adds} (goal <= 0.2 s: {})",
        add_seconds[add_seconds.len() / 2],
        verdict(slowest <= 0.2)
    );
    println!("bytes written:   median {} per add of {added} (largest {})", human_bytes(add_bytes[add_bytes.len() / 2]), human_bytes(*add_bytes.last().unwrap_or(&0)));
    println!(
        "storage:         {} for the file after {adds} adds; latest version {} (JSON + JSONL); ratio {:.2} (goal <= 1.2: {})",
        human_bytes(stored),
        human_bytes(latest_size),
        stored as f64 / latest_size as f64,
        verdict(stored as f64 <= 1.2 * latest_size as f64)
    );
    std::fs::remove_dir_all(work)?;
    Ok(ExitCode::SUCCESS)
}

/// Bytes of the files under `dir` (a file's objects on the local disk).
fn tree_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    if !dir.exists() {
        return Ok(0);
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        total += if kind.is_dir() { tree_bytes(&entry.path())? } else { entry.metadata()?.len() };
    }
    Ok(total)
}

async fn bench_ui(count: usize, fixtures: PathBuf, scaffolding: PathBuf, rounds: usize, work: PathBuf) -> anyhow::Result<ExitCode> {
    use lora_files_format::enrich::reference::SeedRow;
    use lora_files_server::{AppState, Settings};
    use lora_files_store::{Access, Store, StoreConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let inputs = work.join("inputs");
    generate_conversations(count, &fixtures, &inputs)?;
    let mut files = lora_files_format::io::collect_input_files(std::slice::from_ref(&inputs))?;
    files.sort();
    let store = Store::open(StoreConfig::new(work.join("data")), Access::Service).await?;
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&scaffolding)? {
        for line in std::fs::read_to_string(entry?.path())?.lines().filter(|l| !l.trim().is_empty()) {
            seeds.push(SeedRow::from_value(serde_json::from_str(line)?).map_err(anyhow::Error::msg)?);
        }
    }
    store.scaffolding().load(&seeds).await?;
    let owner = store.users().add("bench@example.com", None).await?.id;
    let started = Instant::now();
    for file in &files {
        store.conversations().import_enriched(&owner, &file.display().to_string(), std::fs::read(file)?.into()).await?;
    }
    println!("imported {} conversations in {:.1} s", files.len(), started.elapsed().as_secs_f64());

    let secret = b"a bench secret that is long enough for HS256";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let state = AppState::new(store, secret, Settings::new());
    let token = state.tokens.issue(&owner, Some("bench@example.com"), std::time::Duration::from_secs(3600));
    tokio::spawn(async move { axum::serve(listener, lora_files_server::app(state)).await });

    // One request per connection, read to the end: the time is the server's
    // work plus a loopback round trip.
    let fetch = |path: &'static str| {
        let token = token.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(address).await?;
            let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nCookie: lora_files_session={token}\r\nConnection: close\r\n\r\n");
            let started = Instant::now();
            stream.write_all(request.as_bytes()).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            anyhow::ensure!(response.starts_with(b"HTTP/1.1 200"), "{path}: {}", String::from_utf8_lossy(&response[..response.len().min(200)]));
            Ok::<_, anyhow::Error>((elapsed, response.len()))
        }
    };
    let pages = [("first page", "/conversations"), ("filtered page", "/conversations?persona=anxious_planner&min_quality=3&q=a")];
    for (what, path) in pages {
        fetch(path).await?;
        let mut times = Vec::with_capacity(rounds);
        let mut size = 0;
        for _ in 0..rounds {
            let (ms, bytes) = fetch(path).await?;
            times.push(ms);
            size = bytes;
        }
        times.sort_by(f64::total_cmp);
        println!("{what:<14} {path}: median {:.1} ms, fastest {:.1} ms, {} ({rounds} requests)", times[times.len() / 2], times[0], human_bytes(size as u64));
    }
    Ok(ExitCode::SUCCESS)
}

async fn bench_enrich(count: usize, fixtures: PathBuf, scaffolding: PathBuf, work: PathBuf) -> anyhow::Result<ExitCode> {
    use lora_files_format::enrich::reference::SeedRow;
    use lora_files_store::conversations::ImportRequest;
    use lora_files_store::enrichment::EnrichOutcome;
    use lora_files_store::scaffolding::ScaffoldingKeys;
    use lora_files_store::{Access, Store, StoreConfig};

    let mut raws = Vec::new();
    for entry in std::fs::read_dir(&fixtures)? {
        let text = std::fs::read_to_string(entry?.path())?;
        let document: serde_json::Value = serde_json::from_str(&text)?;
        if document.get("turns").is_some() && document.get("training_pairs").is_none() {
            raws.push(document);
        }
    }
    anyhow::ensure!(!raws.is_empty(), "no raw conversations (conversation_metadata + turns) in {}", fixtures.display());
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&scaffolding)? {
        for line in std::fs::read_to_string(entry?.path())?.lines().filter(|l| !l.trim().is_empty()) {
            seeds.push(SeedRow::from_value(serde_json::from_str(line)?).map_err(anyhow::Error::msg)?);
        }
    }
    let store = Store::open(StoreConfig::new(work.join("data")), Access::Service).await?;
    store.scaffolding().load(&seeds).await?;
    let owner = store.users().add("bench@example.com", None).await?.id;
    let keys = ScaffoldingKeys {
        persona: Some("pragmatic_optimist".into()),
        emotional_arc: Some("shame_to_acceptance".into()),
        training_topic: Some("grandparent_529".into()),
    };
    let mut input_bytes = 0;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let mut raw = raws[i % raws.len()].clone();
        raw["conversation_metadata"]["session_context"] = format!("{} (#{i})", raw["conversation_metadata"]["session_context"].as_str().unwrap_or_default()).into();
        let bytes = serde_json::to_vec_pretty(&raw)?;
        input_bytes += bytes.len() as u64;
        let request = ImportRequest { scaffolding: keys.clone(), ..ImportRequest::new(format!("raw-{i}.json"), bytes) };
        ids.push(store.conversations().import(&owner, request).await?.record().conversation_id.clone());
    }
    let import_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut enriched = 0;
    for (_, result) in store.enrichment().run_many(&owner, &ids).await {
        enriched += usize::from(result?.outcome == EnrichOutcome::Enriched);
    }
    let enrich_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(enriched == count, "only {enriched} of {count} conversations were enriched");
    println!("conversations:   {count} raw ({}), scaffolding {} rows", human_bytes(input_bytes), seeds.len());
    println!("import:          {import_seconds:.2} s, {:.0} conversations/s", count as f64 / import_seconds);
    println!("enrich:          {enrich_seconds:.2} s, {:.0} conversations/s", count as f64 / enrich_seconds);
    Ok(ExitCode::SUCCESS)
}

/// Writes `count` copies of the fixture conversations, each under a new
/// deterministic id, one file at a time (memory stays flat). Returns the bytes written.
fn generate_conversations(count: usize, fixtures: &Path, dir: &Path) -> anyhow::Result<u64> {
    let mut templates = Vec::new();
    for entry in std::fs::read_dir(fixtures)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            let document: serde_json::Value = serde_json::from_str(&text)?;
            let name = document.pointer("/dataset_metadata/dataset_name").and_then(|v| v.as_str()).unwrap_or_default();
            if let Some(id) = lora_files_format::model::conversation_id_from_dataset_name(name) {
                templates.push((id.to_owned(), text));
            }
        }
    }
    templates.sort();
    anyhow::ensure!(!templates.is_empty(), "no enriched conversations with fp_conversation_<uuid> names in {}", fixtures.display());
    std::fs::create_dir_all(dir)?;
    let mut bytes = 0;
    for i in 0..count {
        let (old_id, text) = &templates[i % templates.len()];
        let new_id = uuid_for(i);
        let text = text.replace(old_id.as_str(), &new_id);
        let shard = dir.join(format!("{:03}", i / 1000));
        std::fs::create_dir_all(&shard)?;
        std::fs::write(shard.join(format!("{new_id}.json")), &text)?;
        bytes += text.len() as u64;
    }
    Ok(bytes)
}

fn uuid_for(i: usize) -> String {
    let hex = format!("{:032x}", (i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
    format!("{}-{}-4{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// Resets the kernel's peak-RSS mark so it measures only what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time this process has used so far, on all its threads.
fn process_cpu_seconds() -> f64 {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `time` is a valid timespec for the call to fill.
    let done = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut time) };
    if done != 0 {
        return 0.0;
    }
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}
