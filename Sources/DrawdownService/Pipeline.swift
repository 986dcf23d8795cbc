// The pipeline: consume → shard → apply → commit → publish (see docs/pipeline.md).
