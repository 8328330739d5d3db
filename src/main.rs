/// Records are made on the reading thread and freed on the storing one; glibc malloc spent a
/// quarter of a bulk load on that, mimalloc a small fraction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match vitalhub::cli::main() {
        Ok(code) => code,
        // `vitalhub report | head`: the reader has what it wanted; no error to show.
        Err(e) if vitalhub::is_closed_pipe(&e) => {
            std::process::ExitCode::from(vitalhub::CLOSED_PIPE_STATUS)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
