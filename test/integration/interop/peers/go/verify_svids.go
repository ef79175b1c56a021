// verify_svids: a SPIFFE peer written against Go's standard library only (crypto/x509, as go-spiffe and SPIRE
// use it). For each line of the manifest (name, chain PEM file, bundle PEM file, expected SPIFFE ID, tab
// separated) it parses the chain, verifies the leaf with x509.Certificate.Verify against the bundle's roots for
// client auth and for server auth, checks the X509-SVID leaf (exactly one URI SAN, the expected spiffe:// ID,
// not a CA, digitalSignature and no certificate or CRL signing) and reads the extension under the OID given
// as the first argument. It prints one JSON object per case and judges nothing else: the test asserts.
//
// Usage: verify_svids <oid> <manifest.tsv>
package main

import (
	"bufio"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

type extension struct {
	Critical bool   `json:"critical"`
	ValueHex string `json:"valueHex"`
}

type result struct {
	Name string `json:"name"`
	// ParseError is set when Go cannot parse a certificate of the chain or bundle; nothing else is then set.
	ParseError   string     `json:"parseError,omitempty"`
	URIs         []string   `json:"uris"`
	ClientAuth   string     `json:"clientAuth"`
	ServerAuth   string     `json:"serverAuth"`
	SvidProblem  string     `json:"svidProblem"`
	Extension    *extension `json:"extension"`
	ChainsToRoot int        `json:"chainsToRoot"`
}

func readCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no certificate", file)
	}
	return certs, nil
}

// svidProblem applies the X509-SVID leaf rules a go-spiffe peer applies; "" when they hold.
func svidProblem(leaf *x509.Certificate, expected string) string {
	switch {
	case len(leaf.URIs) != 1:
		return fmt.Sprintf("%d URI SANs, exactly one expected", len(leaf.URIs))
	case leaf.URIs[0].Scheme != "spiffe" || leaf.URIs[0].String() != expected:
		return fmt.Sprintf("URI SAN %s, expected %s", leaf.URIs[0].String(), expected)
	case leaf.IsCA:
		return "the leaf is a CA"
	case leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return "no digitalSignature key usage"
	case leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0:
		return "the leaf may sign certificates or CRLs"
	}
	return ""
}

func check(oid string, name, chainFile, bundleFile, expected string) result {
	r := result{Name: name, URIs: []string{}}
	chain, err := readCerts(chainFile)
	if err != nil {
		r.ParseError = err.Error()
		return r
	}
	roots, err := readCerts(bundleFile)
	if err != nil {
		r.ParseError = err.Error()
		return r
	}
	leaf := chain[0]
	for _, u := range leaf.URIs {
		r.URIs = append(r.URIs, u.String())
	}
	rootPool := x509.NewCertPool()
	for _, c := range roots {
		rootPool.AddCert(c)
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	verify := func(usage x509.ExtKeyUsage) string {
		chains, err := leaf.Verify(x509.VerifyOptions{
			Roots:         rootPool,
			Intermediates: intermediates,
			KeyUsages:     []x509.ExtKeyUsage{usage},
		})
		if err != nil {
			return err.Error()
		}
		r.ChainsToRoot = len(chains)
		return ""
	}
	r.ClientAuth = verify(x509.ExtKeyUsageClientAuth)
	r.ServerAuth = verify(x509.ExtKeyUsageServerAuth)
	r.SvidProblem = svidProblem(leaf, expected)
	for _, e := range leaf.Extensions {
		if e.Id.String() == oid {
			r.Extension = &extension{Critical: e.Critical, ValueHex: hex.EncodeToString(e.Value)}
		}
	}
	return r
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: verify_svids <oid> <manifest.tsv>")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer f.Close()
	out := json.NewEncoder(os.Stdout)
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		fields := strings.Split(lines.Text(), "\t")
		if len(fields) != 4 {
			continue
		}
		if err := out.Encode(check(os.Args[1], fields[0], fields[1], fields[2], fields[3])); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
