"""The broadcaster: the planner that splits an alert's audience into shards, and the senders
that deliver each shard to the provider in rate-limited, checkpointed batches."""
