package dockerbed

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
)

// SaveInto copies an image of the Docker Engine (the DOCKER_* environment) into another image store: `docker save
// IMAGE` piped into load, a command reading the archive on its standard input (`docker -H ... load`, `ctr images
// import -`). An error carries what the failing side printed.
func SaveInto(ctx context.Context, image string, load *exec.Cmd) error {
	save := exec.CommandContext(ctx, "docker", "save", image)
	pipe, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	var saveErr, loadOut bytes.Buffer
	save.Stderr = &saveErr
	load.Stdin, load.Stdout, load.Stderr = pipe, &loadOut, &loadOut
	if err := save.Start(); err != nil {
		return fmt.Errorf("docker save: %w", err)
	}
	lerr := load.Run()
	if err := save.Wait(); err != nil {
		return fmt.Errorf("docker save: %w: %s", err, saveErr.String())
	}
	if lerr != nil {
		return fmt.Errorf("%s: %w: %s", load.Args[0], lerr, loadOut.String())
	}
	return nil
}
