//! Writing a command's output to stdout without `println!`'s panic when the reader has gone.

/// `print!` for a command's output. When stdout is gone (`vitalhub report | head`) the process
/// ends quietly with the status a process killed by SIGPIPE has (128 + 13), as other
/// command-line tools do: `print!` would panic and print a message over the reader's output.
macro_rules! output {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            $crate::output::stdout_failed(&e);
        }
    }};
}

/// `println!` for a command's output; see [`output!`].
macro_rules! outln {
    () => { output!("\n") };
    ($($arg:tt)*) => { output!("{}\n", format_args!($($arg)*)) };
}

/// A status line of a long-running process (daemon, worker, simulator). Nobody reading its
/// stdout is no reason to stop serving, so a failed write is ignored.
macro_rules! status {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

/// The exit status of a process whose stdout reader went away (128 + SIGPIPE).
pub const CLOSED_PIPE_STATUS: u8 = 141;

/// Ends the process quietly when stdout's reader has gone; any other write error is left to the
/// command, which reports it with its context.
pub fn stdout_failed(error: &std::io::Error) {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(CLOSED_PIPE_STATUS));
    }
}

/// Whether a command failed only because stdout's reader went away (`report | head`): an error
/// that ends with a broken pipe anywhere in its chain.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    // serde_json and csv wrap the io::Error without handing it out as their source.
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(BrokenPipe))
            || cause.downcast_ref::<csv::Error>().is_some_and(
                |e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == BrokenPipe),
            )
    })
}

#[cfg(test)]
mod tests {
    use super::is_closed_pipe;
    use anyhow::Context;
    use std::io::{Error, ErrorKind, Write};

    /// A writer whose reader has gone.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(Error::from(ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_is_recognised_through_context_json_and_csv() {
        let io = anyhow::Error::new(Error::from(ErrorKind::BrokenPipe)).context("writing");
        assert!(is_closed_pipe(&io));

        let json = serde_json::to_writer(ClosedPipe, &[1, 2, 3]).unwrap_err();
        assert!(is_closed_pipe(
            &Err::<(), _>(json).context("the report").unwrap_err()
        ));

        let mut csv = csv::Writer::from_writer(ClosedPipe);
        let written = csv.write_record(["a", "b"]).and_then(|()| Ok(csv.flush()?));
        assert!(is_closed_pipe(&anyhow::Error::new(written.unwrap_err())));
    }

    #[test]
    fn other_write_errors_are_not_a_closed_pipe() {
        let full = anyhow::Error::new(Error::new(ErrorKind::StorageFull, "disk full"));
        assert!(!is_closed_pipe(&full));
        assert!(!is_closed_pipe(&anyhow::anyhow!(
            "broken pipe, said in words"
        )));
    }
}
