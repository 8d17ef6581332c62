"""Bootstrap Pulumi project (run once per subscription): see `bootstrap/Pulumi.yaml` and docs/delivery.md."""
