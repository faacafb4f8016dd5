using System.CommandLine;
using System.Globalization;
using FedAvg.Actors.Hosting;
using FedAvg.Core;

namespace FedAvg.Cli;

/// <summary>
/// `fedavg server`: every setting of `fedavg simulate`, the same run directory and progress, but the clients are on
/// `fedavg node` processes that join this one over the network (Akka.Cluster).
/// </summary>
public static class ServerCommand
{
    public const int DefaultPort = 4053;

    public static Command Create()
    {
        var port = new Option<int?>("--port") { Description = $"The port nodes join (default $FEDAVG_PORT, else {DefaultPort}; 0: any free port, printed at start)." };
        var dataPort = new Option<int?>("--data-port") { Description = "The port of the weight channel, over which nodes fetch and upload weights (default $FEDAVG_DATA_PORT, else --port + 1; open it beside --port)." };
        var hostname = new Option<string?>("--hostname") { Description = "The address nodes use to reach this server (default $FEDAVG_HOSTNAME, else 127.0.0.1)." };
        var bind = new Option<string?>("--bind-hostname") { Description = "The interface to listen on (default $FEDAVG_BIND_HOSTNAME, else --hostname; 0.0.0.0 for all)." };
        var startClients = new Option<int?>("--start-clients") { Description = "Registered clients to wait for before round 1 (default: --min-clients; K for results comparable with simulate)." };
        var wait = new Option<string?>("--wait-for-clients") { Description = "How long to wait for enough clients, before round 1 or when too few remain, e.g. 10m (fedavg.cluster.wait-for-clients)." };
        var federation = new Option<string?>("--federation") { Description = "The federation's name; nodes must ask for it (fedavg.cluster.federation)." };
        var standbyOf = new Option<string?>("--standby-of") { Description = "Stand by for the server at HOST:PORT, with the same run settings: keep a replica of its run in this run directory, and take over if its machine is lost. Start it before the nodes." };
        var tlsOptions = new TlsOptions();

        return SimulateCommand.Create(new SimulateCommand.Host("server",
            "Serve a federation: evaluate and average, while `fedavg node` processes on this or other machines train its clients.",
            ["simulation.conf", "cluster.conf"], [port, dataPort, hostname, bind, startClients, wait, federation, standbyOf, .. tlsOptions.All],
            (parse, options, akka, store) =>
            {
                var overrides = new List<string> { ClusterEnvironment.Overrides() }; // the environment, then flags
                var given = ClusterEnvironment.Given(); // what an error about a fedavg.cluster key names: the flag, the variable, or the key
                if (parse.GetValue(wait) is { } w) overrides.Add(CommonOptions.ClusterFlag(given, "wait-for-clients", wait.Name, w));
                if (parse.GetValue(federation) is { } f) overrides.Add(CommonOptions.ClusterFlag(given, "federation", federation.Name, f));
                overrides.AddRange(tlsOptions.Overrides(parse));
                var layered = HoconFiles.Parse(string.Join("\n", overrides), "environment and command-line options").WithFallback(akka);
                var cluster = ClusterOptions.FromConfig(layered, given);
                var endpoint = new Endpoint(parse.GetValue(hostname) ?? ClusterEnvironment.Text("FEDAVG_HOSTNAME", "127.0.0.1"),
                    parse.GetValue(bind) ?? Environment.GetEnvironmentVariable("FEDAVG_BIND_HOSTNAME"),
                    parse.GetValue(port) ?? ClusterEnvironment.Port("FEDAVG_PORT", DefaultPort),
                    parse.GetValue(dataPort) ?? (Environment.GetEnvironmentVariable("FEDAVG_DATA_PORT") is { Length: > 0 } ? ClusterEnvironment.Port("FEDAVG_DATA_PORT", 0) : null));
                endpoint.Validate();
                (string Host, int Port)? active = parse.GetValue(standbyOf) is { } target ? Endpoint.ParseHostPort(target, "--standby-of") : null;
                if (active is { } self && self.Port == endpoint.Port && string.Equals(self.Host, endpoint.Hostname, StringComparison.OrdinalIgnoreCase))
                    throw new UsageException($"--standby-of {self.Host}:{self.Port} is this server's own address (--hostname, --port): " +
                                             "a standby stands by for another server.");
                endpoint.CheckPortFree();
                endpoint.CheckDataPortFree();
                var tls = TlsOptions.Load(layered, endpoint, ClusterHosting.ServerRole, "server", tlsOptions.Given(parse));
                int? start = parse.GetValue(startClients);
                if (start is { } s && (s < 1 || s > options.Clients))
                    throw new UsageException($"--start-clients {s}: must be between 1 and the run's {options.Clients} clients.");
                return (checkpoint, checkpointPath, onStarted, onRound, cancel) =>
                {
                    // once: it creates the run directory, which with --force empties it, checkpoint and all (a server removed
                    // from its cluster that goes on with the run by itself listens again: ClusterServer.RunAsync)
                    int started = 0;
                    return new ClusterServer
                    {
                        CheckpointPath = checkpointPath,
                        ResumeFrom = checkpoint,
                        StartClients = start,
                        Tls = tls,
                        StandbyOf = active is { } a ? new Akka.Actor.Address(ClusterHosting.Protocol(tls), ClusterHosting.SystemName, a.Host, a.Port) : null,
                        OnListening = address =>
                        {
                            if (Interlocked.Exchange(ref started, 1) == 0) onStarted();
                            ConsoleLines.Write(active is { } a
                                ? $"server: standby at {address}, in the cluster of the server at {a.Host}:{a.Port}"
                                : $"server: listening at {address} (nodes join with --join {address.Host}:{address.Port}); " +
                                  $"waiting for {start ?? options.MinClients} clients");
                        },
                        OnRound = onRound,
                        // through the progress bar when there is one (ConsoleLines)
                        OnEvent = text => ConsoleLines.Write(string.Create(CultureInfo.InvariantCulture, $"{DateTime.Now:HH:mm:ss} server: {text}")),
                    }.RunAsync(options, cluster, endpoint, layered, store, cancel);
                };
            })
        {
            CheckFile = c =>
            {
                SimulationOptions.CheckEach(c);
                ClusterOptions.FromConfig(c);
            },
        });
    }
}
