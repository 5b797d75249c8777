//! The lora-files HTTP API (axum), web UI and signed downloads.
//! Not built yet: see the `serve` issue.
