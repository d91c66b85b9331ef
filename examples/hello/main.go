// Command hello prints a greeting and its arguments, and exits with the
// code given by $EXIT_CODE: the smallest nos application.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	fmt.Println("Hello, world!")
	if len(os.Args) > 1 {
		fmt.Println("args:", os.Args[1:])
	}
	code, _ := strconv.Atoi(os.Getenv("EXIT_CODE"))
	os.Exit(code)
}
