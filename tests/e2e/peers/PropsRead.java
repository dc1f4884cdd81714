// Reads a .properties file with java.util.Properties.load(InputStream) (ISO-8859-1 with backslash-u
// escapes, exactly as the Bacula M365 plugin's Java code reads bacula_m365_config.conf) and prints
// every key and value as one JSON object (keys sorted). Single-file source launch:
//   java tests/e2e/peers/PropsRead.java FILE
import java.io.FileInputStream;
import java.io.InputStream;
import java.util.Properties;
import java.util.TreeSet;

public class PropsRead {
    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20 || c > 0x7e) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
            }
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            p.load(in);
        }
        StringBuilder out = new StringBuilder("{");
        boolean first = true;
        for (String k : new TreeSet<>(p.stringPropertyNames())) {
            if (!first) out.append(',');
            first = false;
            out.append(json(k)).append(':').append(json(p.getProperty(k)));
        }
        System.out.println(out.append('}'));
    }
}
