package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// The files below are read at validation, as the daemon reads them before it serves: a file the daemon would
// refuse, `rotator check` refuses too. Their content never appears in a message.

// maxFileSize bounds what validation reads of a file the config names: secrets, certificates and CA bundles take a
// few KiB, and a path to a device, a pipe or a huge file is refused instead of read without end.
const maxFileSize = 1 << 20

// readFile reads a regular file of at most maxFileSize bytes. It opens without blocking, so a named pipe with no
// writer is refused rather than waited on.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return b, nil
}

// checkSecretFile refuses a secret file that cannot be read or holds only whitespace (an empty HMAC key signs
// nothing anyone could not forge).
func checkSecretFile(path string) error {
	b, err := readFile(path)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("file %s is empty", path)
	}
	return nil
}

func checkKeyPair(certFile, keyFile string) error {
	cert, err := readFile(certFile)
	if err == nil {
		var key []byte
		if key, err = readFile(keyFile); err == nil {
			_, err = tls.X509KeyPair(cert, key)
		}
	}
	if err != nil {
		return fmt.Errorf("cert_file %s and key_file %s: %w", certFile, keyFile, err)
	}
	return nil
}

func checkCAFile(path string) error {
	pem, err := readFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return errors.New(path + ": no PEM certificate in it")
	}
	return nil
}
