// Package rotation is the domain of the Qdrant key rotator: keys and their fingerprints, the rotation state machine
// with its phases and invariants, the schedules and the Manager that runs rotations one at a time per deployment. It
// declares the interfaces it needs and imports no Vault SDK, no Docker SDK and no config.
//
// Its files, one job each:
//
//   - key.go: Key, which never prints, and keyed fingerprints; names.go: the name rule of deployments and keys.
//   - ports.go: the Store and Node interfaces the adapters (vaultsync, qdrantctl) implement; errors.go their
//     sentinels.
//   - options.go: Options and New.
//   - rotator.go: Rotator, Rotate and its Report, and holder, the per-run value of one Rotate call: the lease it
//     holds and the report it fills.
//   - journal.go, lease.go: the write-ahead journal and the lease folded into it (check-and-set, one op id per
//     change; progress-only changes ride on the next write, the fence before a side effect); renew.go: renewing
//     the lease when a run writes nothing for a while, and writing the journal through it.
//   - preflight.go: begin (the preflight, minting and journaling the new key), adopt, the check of every node.
//   - phases.go: drive, the phase machine, and the step of each phase: publish, grace, retire, cut, rollback.
//   - targets.go: the slots each step gives a node; nodesteps.go: moving the nodes one by one, fenced and checked.
//   - cluster.go: Qdrant cluster safety (preflight, restart order, settling); open.go: open-node detection.
//   - named.go, refresh.go: named keys and JWTs; inspect.go: Plan, Verify and Status, which change nothing.
//   - schedule.go, scheduler.go, manager.go: when to rotate, and the single-flight Manager.
//   - retry.go: the one retry loop; clock.go: the injected clock; events.go: progress events.
//
// Package rotationtest holds one in-memory fake per interface and the contract suites every implementation passes.
package rotation
