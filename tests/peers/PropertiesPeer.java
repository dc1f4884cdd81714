// Real-peer helper for tests/peer_properties.rs: what java.util.Properties really reads and writes.
// Run as a single-file source program (no build step): java tests/peers/PropertiesPeer.java MODE FILE
//
// Modes (FILE holds one item per line, results go to stdout one line per item, in order):
//   load-reader  item = hex of a UTF-8 document; Properties.load(Reader) over UTF-8 text
//   load-stream  item = hex of document bytes;  Properties.load(InputStream) (ISO-8859-1)
//                result: "ok" then " K:V" per put() call in order (K, V as hex of UTF-16 units),
//                or "err <exception class>"
//   store        item = hex of UTF-16 units of a string s; result: "V K" where V is the line
//                Properties.store(OutputStream) writes for key "k" = s and K the line for key s =
//                "" (each as hex of the bytes, without the line break; the date line dropped)
//   date         item = Unix seconds; result: new Date(ms).toString() with the default zone UTC

import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;

public class PropertiesPeer {
    /** Records every put() that load() makes, in order (Properties itself is a hash map). */
    static final class Recording extends Properties {
        final List<String[]> puts = new ArrayList<>();

        @Override
        public synchronized Object put(Object k, Object v) {
            puts.add(new String[] {(String) k, (String) v});
            return super.put(k, v);
        }
    }

    static String hexUnits(String s) {
        StringBuilder b = new StringBuilder(s.length() * 4);
        for (int i = 0; i < s.length(); i++) b.append(String.format("%04x", (int) s.charAt(i)));
        return b.toString();
    }

    static String hexBytes(byte[] bytes) {
        StringBuilder b = new StringBuilder(bytes.length * 2);
        for (byte x : bytes) b.append(String.format("%02x", x & 0xff));
        return b.toString();
    }

    static byte[] unhexBytes(String h) {
        byte[] out = new byte[h.length() / 2];
        for (int i = 0; i < out.length; i++)
            out[i] = (byte) Integer.parseInt(h.substring(2 * i, 2 * i + 2), 16);
        return out;
    }

    static String unhexUnits(String h) {
        StringBuilder b = new StringBuilder(h.length() / 4);
        for (int i = 0; i + 4 <= h.length(); i += 4)
            b.append((char) Integer.parseInt(h.substring(i, i + 4), 16));
        return b.toString();
    }

    /** The single entry line store() writes for p (the date comment dropped). */
    static String storedLine(Properties p) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        p.store(out, null);
        String text = new String(out.toByteArray(), StandardCharsets.ISO_8859_1);
        String[] lines = text.split("\n", -1);
        if (lines.length != 3 || !lines[0].startsWith("#") || !lines[2].isEmpty())
            throw new IllegalStateException("unexpected store output");
        return lines[1];
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: PropertiesPeer load-reader|load-stream|store|date FILE");
            System.exit(2);
        }
        String mode = args[0];
        List<String> items = Files.readAllLines(Paths.get(args[1]), StandardCharsets.US_ASCII);
        StringBuilder out = new StringBuilder();
        for (String item : items) {
            switch (mode) {
                case "load-reader":
                case "load-stream": {
                    byte[] doc = unhexBytes(item);
                    Recording p = new Recording();
                    try {
                        if (mode.equals("load-reader"))
                            p.load(new InputStreamReader(new ByteArrayInputStream(doc), StandardCharsets.UTF_8));
                        else p.load(new ByteArrayInputStream(doc));
                        out.append("ok");
                        for (String[] kv : p.puts)
                            out.append(' ').append(hexUnits(kv[0])).append(':').append(hexUnits(kv[1]));
                    } catch (IllegalArgumentException e) {
                        out.append("err ").append(e.getClass().getSimpleName());
                    }
                    break;
                }
                case "store": {
                    String s = unhexUnits(item);
                    Properties v = new Properties();
                    v.setProperty("k", s);
                    Properties k = new Properties();
                    k.setProperty(s, "");
                    out.append(hexBytes(storedLine(v).getBytes(StandardCharsets.ISO_8859_1)))
                        .append(' ')
                        .append(hexBytes(storedLine(k).getBytes(StandardCharsets.ISO_8859_1)));
                    break;
                }
                case "date": {
                    TimeZone.setDefault(TimeZone.getTimeZone("UTC"));
                    out.append(new Date(Long.parseLong(item.trim()) * 1000L).toString());
                    break;
                }
                default:
                    System.err.println("unknown mode " + mode);
                    System.exit(2);
            }
            out.append('\n');
        }
        System.out.print(out);
        System.out.flush();
    }
}
