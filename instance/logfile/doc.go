// Package logfile stores an instance's application output on disk and
// reads it back.
//
// The per-instance monitor copies the application's stdout and stderr into
// a [Writer], which appends one JSON object per line to [FileName] in the
// instance directory:
//
//	{"time":"2024-05-01T12:00:00.123456789Z","stream":"stdout","log":"hello\n"}
//
// "time" is the UTC time the record was written (RFC 3339 with nanoseconds),
// "stream" names the stream ("stdout" or "stderr") and "log" is the text,
// including its trailing newline when the line was complete. Text that is
// not valid UTF-8 is stored with the invalid bytes replaced by U+FFFD, as
// JSON strings cannot hold them.
//
// When the current file would grow beyond [Options.MaxSize] it is rotated:
// app.log becomes app.log.1, app.log.1 becomes app.log.2 and so on, and the
// oldest file beyond [Options.MaxFiles] is removed, so the output of a
// chatty guest cannot fill the disk. A record is never split across files.
//
// [Read] returns the stored records (`nos logs`), [Follow] returns them and
// then follows new ones across rotations (`nos logs -f`, `nos attach`,
// foreground `nos run`), and [Format] renders a record as the CLI prints it.
//
// Readers tolerate damage: a torn last line (the writer was killed in the
// middle of a write) and corrupt lines elsewhere are skipped silently.
package logfile
