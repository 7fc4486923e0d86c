//! `loadgen`: drives kcache against the simulated API server or a real cluster.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("loadgen: no mode implemented yet");
    std::process::exit(2);
}
