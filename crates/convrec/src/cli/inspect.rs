//! `convrec inspect FILE [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use convrec_media::inspect::{InspectError, Report, inspect};

/// Arguments of `convrec inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The fMP4 file.
    file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `inspect`: exit 0 with a report, 1 when the file is damaged (with the byte offset).
pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let mut file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut start = [0u8; 8];
    if std::io::Read::read_exact(&mut file, &mut start).is_ok() && convrec_seal::is_sealed(&start) {
        eprintln!(
            "convrec: {}: the file is encrypted for its account's key; open it first with convrec decrypt --key PRIVATE IN OUT",
            args.file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    std::io::Seek::rewind(&mut file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    match inspect(file) {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", summary(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(InspectError::Io(e)) => {
            Err(e).with_context(|| format!("cannot read {}", args.file.display()))
        }
        Err(e) => {
            if args.json {
                let error = serde_json::json!({ "error": e.to_string(), "offset": e.offset() });
                println!("{error}");
            }
            eprintln!("convrec: {}: {e}", args.file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The human-readable report.
pub fn summary(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "file: {} bytes, brand {}", r.file_size, r.major_brand);
    for t in &r.tracks {
        let format = match (t.width, t.height, t.sample_rate, t.channels) {
            (Some(w), Some(h), _, _) => format!("{w}x{h}"),
            (_, _, Some(rate), Some(ch)) => format!("{rate} Hz, {ch} ch"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "track {} {:?} {} {}: {} samples, {:.3}s from {:.3}s to {:.3}s",
            t.track_id,
            t.kind,
            t.codec,
            format,
            t.samples,
            t.duration_seconds,
            t.start_seconds,
            t.end_seconds
        );
        for res in &t.resolutions {
            let _ = writeln!(
                out,
                "  resolution {}x{} from {:.3}s",
                res.width, res.height, res.from_seconds
            );
        }
        if !t.keyframe_times.is_empty() {
            let times: Vec<String> = t.keyframe_times.iter().map(|k| format!("{k:.3}")).collect();
            let _ = writeln!(out, "  key frames at {}", times.join(", "));
        }
        for g in &t.gaps {
            let _ = writeln!(
                out,
                "  gap of {:.3}s at {:.3}s",
                g.duration_seconds, g.start_seconds
            );
        }
    }
    let _ = writeln!(out, "fragments: {}", r.fragments.len());
    for f in &r.fragments {
        let _ = writeln!(
            out,
            "  #{} at byte {} ({} bytes): {:.3}s to {:.3}s",
            f.sequence, f.offset, f.size, f.start_seconds, f.end_seconds
        );
    }
    if let Some(offset) = r.av_start_offset_ms {
        let _ = writeln!(out, "video starts {offset:.1} ms after audio");
    }
    let _ = writeln!(
        out,
        "index: {}",
        if r.index_present {
            format!("present ({} entries)", r.index_entries)
        } else {
            "absent (the recording did not end normally, or is still running)".into()
        }
    );
    out
}
