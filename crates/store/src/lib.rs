//! Catalogue (SQLite / PostgreSQL) and object storage (local disk / S3) for
//! lora-files, and the TrainingFileService. Not built yet: see the catalogue issue.
