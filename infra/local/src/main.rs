//! `eddo-local demo`: play the scripted scenario on moto and print its timeline.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        Some("demo") => match eddo_local::demo::run().await {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::FAILURE,
            Err(e) => {
                eprintln!("eddo-local: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!(
                "usage: eddo-local demo\n\n  demo  start moto, deliver a signed push and its redelivery, print the timeline"
            );
            std::process::ExitCode::from(2)
        }
    }
}
