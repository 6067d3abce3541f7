package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// The files below are read at validation, as the daemon reads them before it serves: a file the daemon would
// refuse, `rotator check` refuses too. Their content never appears in a message.

// checkSecretFile refuses a secret file that cannot be read or holds only whitespace (an empty HMAC key signs
// nothing anyone could not forge).
func checkSecretFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("file %s is empty", path)
	}
	return nil
}

func checkKeyPair(certFile, keyFile string) error {
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		return fmt.Errorf("cert_file %s and key_file %s: %w", certFile, keyFile, err)
	}
	return nil
}

func checkCAFile(path string) error {
	pem, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return errors.New(path + ": no PEM certificate in it")
	}
	return nil
}
