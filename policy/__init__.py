"""Pulumi policy pack of aks-image-classifier: `pulumi preview --policy-pack policy`."""
