"""The pipeline's gate between plan and apply.

    python3 plan_gate.py TFPLAN_JSON

Reads `terraform show -json tfplan` and prints, as shell assignments for the
plan build to export (CodeBuild exported variables, so the pipeline's
Approve stage condition can read them as #{Plan.DESTRUCTIVE}):

    DESTRUCTIVE=true|false   whether any resource is deleted or replaced
    PLAN_SUMMARY='...'       counts and the first deleted/replaced addresses

A replacement is a delete plus a create (in either order), so any "delete"
among a resource change's actions makes the plan destructive. Standard
library only: the deploy projects install nothing but Terraform.
"""

import json
import shlex
import sys

# An approval's CustomData may be at most 500 characters, and the summary is
# only part of it (terraform/cicd/main.tf, the Approve stage: about 130
# characters around it for the longest stack name). check_pipeline.py checks
# that the message with a summary of SUMMARY_LIMIT characters fits in 500.
SUMMARY_LIMIT = 350


def gate(plan):
    counts = {"create": 0, "update": 0, "replace": 0, "delete": 0}
    destroyed = []
    for change in plan.get("resource_changes", []):
        actions = change["change"]["actions"]
        if "delete" in actions and "create" in actions:
            counts["replace"] += 1
            destroyed.append(f"{change['address']} (replace)")
        elif "delete" in actions:
            counts["delete"] += 1
            destroyed.append(f"{change['address']} (delete)")
        elif "create" in actions:
            counts["create"] += 1
        elif "update" in actions:
            counts["update"] += 1
    summary = (
        f"{counts['create']} to add, {counts['update']} to change, "
        f"{counts['replace']} to replace, {counts['delete']} to destroy"
    )
    if destroyed:
        summary += ": " + ", ".join(destroyed)
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 3] + "..."
    return bool(destroyed), summary


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plan_gate.py TFPLAN_JSON")
    with open(sys.argv[1], encoding="utf-8") as f:
        destructive, summary = gate(json.load(f))
    print(f"DESTRUCTIVE={'true' if destructive else 'false'}")
    print(f"PLAN_SUMMARY={shlex.quote(summary)}")


if __name__ == "__main__":
    main()
