"""Policy pack entry point: `pulumi preview --policy-pack policy` (run from the project root)."""

from pulumi_policy import EnforcementLevel, PolicyPack

try:
    from rules import POLICIES  # the Pulumi CLI runs this file from inside policy/
except ImportError:  # imported as a package (tests)
    from policy.rules import POLICIES

PolicyPack(name="aks-image-classifier", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
