// Java peer for tests/peer_pfx.rs: opens a PKCS#12 file the way the Bacula M365 plugin does
// (KeyStore.getInstance("PKCS12")), signs with the key, verifies with the certificate.
//
//   java tests/peers/PfxPeer.java <file.pfx> <password> <message-to-sign>
//
// Prints key=value lines; exits 0 only if everything checked out, and if loading the same file
// with a wrong password fails.
import java.io.FileInputStream;
import java.io.InputStream;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.security.interfaces.RSAPrivateCrtKey;
import java.security.interfaces.RSAPublicKey;
import java.util.Base64;
import java.util.Collections;

public class PfxPeer {
    static KeyStore load(String file, char[] password) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(file)) {
            ks.load(in, password);
        }
        return ks;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: PfxPeer <file.pfx> <password> <message>");
            System.exit(64);
        }
        char[] password = args[1].toCharArray();
        KeyStore ks = load(args[0], password);
        String keyAlias = null;
        for (String alias : Collections.list(ks.aliases())) {
            if (ks.isKeyEntry(alias)) {
                keyAlias = alias;
            }
        }
        if (keyAlias == null) {
            throw new IllegalStateException("no key entry in " + Collections.list(ks.aliases()));
        }
        PrivateKey key = (PrivateKey) ks.getKey(keyAlias, password);
        X509Certificate cert = (X509Certificate) ks.getCertificate(keyAlias);
        if (key == null || cert == null) {
            throw new IllegalStateException("key or certificate missing for alias " + keyAlias);
        }
        RSAPublicKey pub = (RSAPublicKey) cert.getPublicKey();
        if (key instanceof RSAPrivateCrtKey crt && !crt.getModulus().equals(pub.getModulus())) {
            throw new IllegalStateException("key does not match certificate");
        }

        byte[] message = args[2].getBytes("UTF-8");
        Signature signer = Signature.getInstance("SHA256withRSA");
        signer.initSign(key);
        signer.update(message);
        byte[] sig = signer.sign();
        Signature verifier = Signature.getInstance("SHA256withRSA");
        verifier.initVerify(cert.getPublicKey());
        verifier.update(message);
        if (!verifier.verify(sig)) {
            throw new IllegalStateException("signature made with the key does not verify with the certificate");
        }

        System.out.println("alias=" + keyAlias);
        System.out.println("entries=" + ks.size());
        System.out.println("key_algorithm=" + key.getAlgorithm());
        System.out.println("key_bits=" + pub.getModulus().bitLength());
        System.out.println("subject=" + cert.getSubjectX500Principal().getName());
        System.out.println("sig_alg=" + cert.getSigAlgName());
        System.out.println("not_before=" + cert.getNotBefore().getTime() / 1000);
        System.out.println("not_after=" + cert.getNotAfter().getTime() / 1000);
        System.out.println("serial=" + cert.getSerialNumber().toString(16));
        System.out.println("signature_verified=true");
        System.out.println("signature_b64=" + Base64.getEncoder().encodeToString(sig));

        try {
            load(args[0], (args[1] + "x").toCharArray());
            System.out.println("wrong_password=accepted");
            System.exit(3);
        } catch (java.io.IOException e) {
            System.out.println("wrong_password=rejected (" + e.getClass().getSimpleName() + ")");
        }
    }
}
