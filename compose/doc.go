// Package compose runs a whole application from one Compose file, as
// docker compose does, on nos instances.
//
// It has two halves. The pure half loads a Compose file with
// github.com/compose-spec/compose-go (Load, LoadBytes) and translates the
// project into a Plan (Translate): per service, the instance.Options it
// runs with, the image it needs (and how to build it), its dependencies
// with their conditions, the hash of its resolved configuration, and a
// warning for every key nos does not support. The executing half (Engine)
// brings a plan up and down through a small Backend interface: the CLI
// implements it with the instance, store and assemble packages, and tests
// with a fake.
//
// Instances carry docker compose's labels (LabelProject, LabelService,
// LabelNumber, LabelHash), which is how the engine finds a project's
// instances and tells an unchanged service from one to recreate.
package compose
