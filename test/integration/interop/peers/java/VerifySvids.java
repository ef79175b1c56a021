import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;

/**
 * A SPIFFE peer on the JDK alone (java.security.cert, as a Java service terminating mTLS reads an X509-SVID).
 * For each line of the manifest (name, chain PEM file, bundle PEM file, expected SPIFFE ID, tab separated) it
 * parses the certificates with CertificateFactory, reads the leaf's URI SANs and the extension under the OID
 * given as the first argument, and validates the path to the bundle's roots with PKIX (revocation off: SVIDs
 * are short-lived). It prints one JSON object per case and judges nothing else: the test asserts.
 *
 * Usage: java -cp DIR VerifySvids OID MANIFEST
 */
public final class VerifySvids {
    private VerifySvids() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: VerifySvids <oid> <manifest.tsv>");
            System.exit(2);
        }
        for (String line : Files.readAllLines(Path.of(args[1]))) {
            String[] f = line.split("\t");
            if (f.length == 4) System.out.println(check(args[0], f[0], f[1], f[2]));
        }
    }

    private static List<X509Certificate> load(String file) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        List<X509Certificate> out = new ArrayList<>();
        try (InputStream in = new FileInputStream(file)) {
            for (java.security.cert.Certificate c : cf.generateCertificates(in)) out.add((X509Certificate) c);
        }
        if (out.isEmpty()) throw new IllegalArgumentException(file + ": no certificate");
        return out;
    }

    private static String check(String oid, String name, String chainFile, String bundleFile) {
        StringBuilder json = new StringBuilder("{\"name\":").append(str(name));
        json.append(",\"java\":").append(str(System.getProperty("java.version")));
        List<X509Certificate> chain;
        List<X509Certificate> roots;
        try {
            chain = load(chainFile);
            roots = load(bundleFile);
        } catch (Exception e) {
            return json.append(",\"parseError\":").append(str(e.toString())).append('}').toString();
        }
        X509Certificate leaf = chain.get(0);
        List<String> uris = new ArrayList<>();
        try {
            Collection<List<?>> sans = leaf.getSubjectAlternativeNames();
            if (sans != null) {
                for (List<?> san : sans) if (((Integer) san.get(0)) == 6) uris.add((String) san.get(1));
            }
        } catch (Exception e) {
            return json.append(",\"parseError\":").append(str(e.toString())).append('}').toString();
        }
        json.append(",\"uris\":[");
        for (int i = 0; i < uris.size(); i++) json.append(i > 0 ? "," : "").append(str(uris.get(i)));
        json.append(']');
        byte[] wrapped = leaf.getExtensionValue(oid);
        if (wrapped == null) {
            json.append(",\"extension\":null");
        } else {
            Set<String> critical = leaf.getCriticalExtensionOIDs();
            json.append(",\"extension\":{\"critical\":").append(critical != null && critical.contains(oid));
            json.append(",\"valueHex\":").append(str(HexFormat.of().formatHex(octetStringContent(wrapped))));
            json.append('}');
        }
        json.append(",\"pkixProblem\":").append(str(pkixProblem(chain, roots)));
        return json.append('}').toString();
    }

    /** getExtensionValue returns the DER OCTET STRING around extnValue: its content is the extension value. */
    private static byte[] octetStringContent(byte[] der) {
        if (der.length < 2 || der[0] != 0x04) throw new IllegalArgumentException("not an OCTET STRING");
        int len = der[1] & 0xff;
        int off = 2;
        if (len >= 0x80) {
            int n = len & 0x7f;
            len = 0;
            for (int i = 0; i < n; i++) len = (len << 8) | (der[2 + i] & 0xff);
            off = 2 + n;
        }
        byte[] out = new byte[len];
        System.arraycopy(der, off, out, 0, len);
        return out;
    }

    private static String pkixProblem(List<X509Certificate> chain, List<X509Certificate> roots) {
        try {
            Set<TrustAnchor> anchors = new HashSet<>();
            for (X509Certificate r : roots) anchors.add(new TrustAnchor(r, null));
            PKIXParameters params = new PKIXParameters(anchors);
            params.setRevocationEnabled(false);
            CertPath path = CertificateFactory.getInstance("X.509").generateCertPath(chain);
            CertPathValidator.getInstance("PKIX").validate(path, params);
            return "";
        } catch (Exception e) {
            return e.toString();
        }
    }

    private static String str(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
}
