package guest

import (
	"fmt"
	"os"
)

// logf writes the init's own diagnostics to the console, which the host
// keeps in the instance's console log, apart from the application's output.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "nos-init: "+format+"\n", args...)
}
