package e2e;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Embedded single OpenSearch 2.19.x node for e2e tests (no Bootstrap: no SecurityManager, no bootstrap checks).
 *
 * <p>Usage: {@code java -cp target/classes:$(cat target/cp.txt) e2e.TestNode <home> [<http-port>|0]}
 *
 * <p>Modules are loaded as class-path plugins; bundles found under {@code <home>/modules} and
 * {@code <home>/plugins} (e.g. the WITH_ML profile) are loaded by the node as usual.
 * {@code <home>/config/opensearch.yml}, if present, adds settings; the ones set here win.
 * With {@code <home>/plugins/opensearch-security} present, http.type/transport.type are left to that plugin.
 * Prints {@code OPENSEARCH_HTTP=<host:port>} once HTTP is bound; SIGTERM closes the node.
 */
public final class TestNode {

    /** Loaded if present on the class path; absent ones are skipped (e.g. painless when it is a module bundle). */
    static final String[] CLASSPATH_PLUGINS = {
        "org.opensearch.transport.Netty4Plugin", // 2.x name (3.x: Netty4ModulePlugin)
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.painless.PainlessPlugin",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "org.opensearch.index.reindex.ReindexPlugin",
        "org.opensearch.script.mustache.MustachePlugin",
        "org.opensearch.join.ParentJoinPlugin",
        "org.opensearch.ingest.common.IngestCommonPlugin" };

    /** Node's constructor taking class-path plugins is protected. */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    private TestNode() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: e2e.TestNode <home> [<http-port>|0]");
            System.exit(2);
        }
        // the raw streams: OpenSearch's logging setup redirects System.out/err into log4j later
        PrintStream out = System.out;
        PrintStream err = System.err;
        LogConfigurator.registerErrorListener(); // must precede any log4j use
        LogConfigurator.setNodeName("node-0"); // for %node_name, as Bootstrap does
        Path home = Paths.get(args[0]).toAbsolutePath().normalize();
        String port = args.length > 1 ? args[1] : "0";
        Path conf = home.resolve("config");
        Path logs = home.resolve("logs");
        Files.createDirectories(conf);
        Files.createDirectories(logs);
        // Rewritten on every start. Kept off the class-path root on purpose: log4j would auto-load it
        // before LogConfigurator and any error there aborts LogConfigurator.configure.
        try (InputStream in = TestNode.class.getResourceAsStream("/e2e/log4j2.properties")) {
            Files.copy(in, conf.resolve("log4j2.properties"), StandardCopyOption.REPLACE_EXISTING);
        }
        Path portsFile = logs.resolve("http.ports");
        Files.deleteIfExists(portsFile);

        // WITH_SECURITY=1 (node.sh): the security plugin bundle brings its own http/transport types
        // (TLS transport, authenticating HTTP) as plugin defaults, which explicit values would override.
        boolean securityPlugin = Files.isRegularFile(home.resolve("plugins/opensearch-security/plugin-descriptor.properties"));
        Settings.Builder builder = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", logs.toString())
            .put("cluster.name", "sidecar-e2e")
            .put("node.name", "node-0")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", "0")
            .put("node.portsfile", true)
            .put("node.processors", Math.min(2, Runtime.getRuntime().availableProcessors()))
            .put("indices.breaker.total.use_real_memory", false)
            .put("cluster.routing.allocation.disk.threshold_enabled", false);
        if (!securityPlugin) {
            builder.put("http.type", "netty4").put("transport.type", "netty4");
        }
        Settings settings = builder.build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, Collections.emptyMap(), conf, () -> "node-0");
        LogConfigurator.configure(env);

        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String cn : CLASSPATH_PLUGINS) {
            try {
                plugins.add(Class.forName(cn).asSubclass(Plugin.class));
            } catch (ClassNotFoundException ignored) {
                // not on the class path
            }
        }

        CountDownLatch stopped = new CountDownLatch(1);
        try {
            Node node = new EmbeddedNode(env, plugins);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                try {
                    node.close();
                    if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                        err.println("node did not close within 30s");
                    }
                } catch (Exception e) {
                    e.printStackTrace(err);
                } finally {
                    stopped.countDown();
                }
            }, "testnode-shutdown"));
            node.start(); // returns once cluster-manager is elected and HTTP is bound
        } catch (Throwable t) {
            err.println("TestNode: startup failed: " + t);
            t.printStackTrace(err);
            err.flush();
            Runtime.getRuntime().halt(1); // don't run the shutdown hook against a half-built node
        }
        out.println("OPENSEARCH_HTTP=" + Files.readAllLines(portsFile).get(0));
        out.flush();
        stopped.await(); // OpenSearch threads are daemon threads: keep the JVM alive
    }
}
