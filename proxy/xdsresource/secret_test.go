package xdsresource_test

import (
	"encoding/pem"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

// modSecret is rootCASecret changed by mod.
func modSecret(mod func(*tlsv3.Secret)) *tlsv3.Secret {
	s := rootCASecret()
	mod(s)
	return s
}

// modTrustedCA is rootCASecret whose trusted_ca is d.
func modTrustedCA(d *corev3.DataSource) *tlsv3.Secret {
	return modSecret(func(s *tlsv3.Secret) { s.GetValidationContext().TrustedCa = d })
}

func inlineBytes(b string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(b)}}
}

func TestDecodeSecret(t *testing.T) {
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	junkPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))
	bundle := "# weft test root CA\n" + rootCAPEM + "\n# the same again\n" + rootCAPEM
	tests := []struct {
		name    string
		in      proto.Message
		want    *xdsresource.Secret
		wantErr string
	}{
		{
			name: "root CA",
			in:   rootCASecret(),
			want: &xdsresource.Secret{Name: "ROOTCA", TrustedCA: []byte(rootCAPEM)},
		},
		{
			name: "inline_string",
			in: modTrustedCA(&corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: rootCAPEM},
			}),
			want: &xdsresource.Secret{Name: "ROOTCA", TrustedCA: []byte(rootCAPEM)},
		},
		{
			name: "bundle with comments",
			in:   modTrustedCA(inlineBytes(bundle)),
			want: &xdsresource.Secret{Name: "ROOTCA", TrustedCA: []byte(bundle)},
		},

		{
			name:    "empty name",
			in:      modSecret(func(s *tlsv3.Secret) { s.Name = "" }),
			wantErr: `xdsresource: secret: name: must not be empty`,
		},
		{
			name:    "no type",
			in:      &tlsv3.Secret{Name: "ROOTCA"},
			wantErr: `xdsresource: secret "ROOTCA": validation_context: must be set`,
		},
		{
			name: "tls_certificate",
			in: modSecret(func(s *tlsv3.Secret) {
				s.Type = &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
					CertificateChain: inlineBytes(rootCAPEM),
				}}
			}),
			wantErr: `xdsresource: secret "ROOTCA": tls_certificate: not supported: the proxy generates its own key; certificates are not delivered by SDS`,
		},
		{
			name: "session_ticket_keys",
			in: modSecret(func(s *tlsv3.Secret) {
				s.Type = &tlsv3.Secret_SessionTicketKeys{SessionTicketKeys: &tlsv3.TlsSessionTicketKeys{}}
			}),
			wantErr: `secret "ROOTCA": session_ticket_keys: not supported`,
		},
		{
			name: "generic_secret",
			in: modSecret(func(s *tlsv3.Secret) {
				s.Type = &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{}}
			}),
			wantErr: `secret "ROOTCA": generic_secret: not supported`,
		},
		{
			name:    "no trusted_ca",
			in:      modTrustedCA(nil),
			wantErr: `secret "ROOTCA": validation_context.trusted_ca: must be set`,
		},
		{
			name:    "empty trusted_ca",
			in:      modTrustedCA(&corev3.DataSource{}),
			wantErr: `validation_context.trusted_ca: one of inline_bytes and inline_string must be set`,
		},
		{
			name:    "trusted_ca filename",
			in:      modTrustedCA(&corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/ca.pem"}}),
			wantErr: `validation_context.trusted_ca.filename: not supported`,
		},
		{
			name: "trusted_ca environment_variable",
			in: modTrustedCA(&corev3.DataSource{
				Specifier: &corev3.DataSource_EnvironmentVariable{EnvironmentVariable: "CA"},
			}),
			wantErr: `validation_context.trusted_ca.environment_variable: not supported`,
		},
		{
			name: "trusted_ca watched_directory",
			in: func() proto.Message {
				d := inlineBytes(rootCAPEM)
				d.WatchedDirectory = &corev3.WatchedDirectory{Path: "/etc"}
				return modTrustedCA(d)
			}(),
			wantErr: `validation_context.trusted_ca.watched_directory: not supported`,
		},
		{
			name:    "trusted_ca not PEM",
			in:      modTrustedCA(inlineBytes("not a certificate")),
			wantErr: `validation_context.trusted_ca: no PEM certificate found`,
		},
		{
			name:    "trusted_ca empty",
			in:      modTrustedCA(inlineBytes("")),
			wantErr: `validation_context.trusted_ca: no PEM certificate found`,
		},
		{
			name:    "trusted_ca with a key",
			in:      modTrustedCA(inlineBytes(rootCAPEM + keyPEM)),
			wantErr: `validation_context.trusted_ca: PEM block 2 is a "EC PRIVATE KEY", want only CERTIFICATE blocks`,
		},
		{
			name:    "trusted_ca not a certificate",
			in:      modTrustedCA(inlineBytes(junkPEM)),
			wantErr: `validation_context.trusted_ca: PEM block 1: x509: malformed certificate`,
		},
		{
			name:    "trusted_ca with a malformed block",
			in:      modTrustedCA(inlineBytes(rootCAPEM + "-----BEGIN CERTIFICATE-----\n!!!\n")),
			wantErr: `validation_context.trusted_ca: malformed PEM block`,
		},
		{
			name: "san matchers in a secret",
			in: modSecret(func(s *tlsv3.Secret) {
				s.GetValidationContext().MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{uriSAN(apiSAN)}
			}),
			wantErr: `validation_context.match_typed_subject_alt_names: not supported in a secret: set them in the TLS context's combined_validation_context.default_validation_context`,
		},
		{
			name:    "allow_expired_certificate in a secret",
			in:      modSecret(func(s *tlsv3.Secret) { s.GetValidationContext().AllowExpiredCertificate = true }),
			wantErr: `validation_context.allow_expired_certificate: not supported`,
		},
		{
			name: "crl in a secret",
			in: modSecret(func(s *tlsv3.Secret) {
				s.GetValidationContext().Crl = inlineBytes("x")
			}),
			wantErr: `validation_context.crl: not supported`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdsresource.DecodeSecret(marshal(t, tt.in))
			checkResult(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// TestDecodeSecretCopies checks that a decoded secret does not alias the
// input, which the xDS client may reuse.
func TestDecodeSecretCopies(t *testing.T) {
	b := marshal(t, rootCASecret())
	s, err := xdsresource.DecodeSecret(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if string(s.TrustedCA) != rootCAPEM {
		t.Fatalf("TrustedCA changed with the input:\n%q", s.TrustedCA)
	}
}
