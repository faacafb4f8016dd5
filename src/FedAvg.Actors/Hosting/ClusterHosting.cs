using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Event;
using FedAvg.Core;

namespace FedAvg.Actors.Hosting;

/// <summary>
/// The `fedavg.cluster` section of the layered HOCON (hocon/cluster.conf), checked; errors name the key. (Not
/// "ClusterSettings": a test that uses Akka.Cluster beside this namespace, as NodeFaults does, could not name both.)
/// </summary>
/// <param name="ServerRestarts">How many times in a row, with no round completed in between, a server removed from its
/// cluster with no standby in it goes on with the run by itself (<see cref="ClusterServer.RunAsync"/>); 0: never.</param>
public sealed record ClusterOptions(string Federation, TimeSpan JoinTimeout, TimeSpan ServerWait, TimeSpan WaitForClients, TimeSpan LeaveTimeout,
    int ServerRestarts)
{
    /// <param name="given">The keys whose value came from a flag or an environment variable, and its name
    /// (<see cref="ClusterEnvironment.Given"/> and the command's flags): an error names that, else the key.</param>
    public static ClusterOptions FromConfig(Config config, IReadOnlyDictionary<string, string>? given = null)
    {
        var c = config.GetConfig("fedavg.cluster") ?? throw new UsageException("configuration has no `fedavg.cluster` section.");
        string Name(string key) => given is not null && given.TryGetValue(key, out var source) ? source : $"fedavg.cluster.{key}";
        string[] keys = ["federation", "join-timeout", "server-wait", "wait-for-clients", "leave-timeout", "server-restarts", "tls"];
        foreach (var key in c.AsEnumerable().Select(kv => kv.Key))
            if (!keys.Contains(key)) throw new UsageException($"fedavg.cluster.{key} is not a setting. Valid settings: {string.Join(", ", keys)}.");
        var settings = new ClusterOptions(
            Read(c, "federation", Name, k => c.GetString(k)),
            Duration(c, "join-timeout", Name), Duration(c, "server-wait", Name), Duration(c, "wait-for-clients", Name), Duration(c, "leave-timeout", Name),
            Count(c, "server-restarts", Name));
        if (string.IsNullOrWhiteSpace(settings.Federation)) throw new UsageException($"{Name("federation")} must not be empty.");
        return settings;
    }

    static TimeSpan Duration(Config c, string key, Func<string, string> name)
    {
        var value = Read(c, key, name, k =>
        {
            try
            {
                return c.GetTimeSpan(k, null, allowInfinite: false);
            }
            catch (FormatException)
            {
                throw new FormatException("not a duration such as 30s or 10m");
            }
        });
        if (value <= TimeSpan.Zero) throw new UsageException($"{name(key)} must be a positive duration such as 30s or 10m, got '{c.GetString(key)}'.");
        return value;
    }

    static int Count(Config c, string key, Func<string, string> name)
    {
        var value = Read(c, key, name, k => int.TryParse(c.GetString(k), System.Globalization.NumberStyles.Integer,
            System.Globalization.CultureInfo.InvariantCulture, out int n) ? n : throw new FormatException("not a whole number such as 3"));
        if (value < 0) throw new UsageException($"{name(key)} must be 0 or more, got {value}.");
        return value;
    }

    static T Read<T>(Config c, string key, Func<string, string> name, Func<string, T> read)
    {
        if (!c.HasPath(key)) throw new UsageException($"fedavg.cluster.{key} is missing from the configuration.");
        try
        {
            return read(key);
        }
        catch (Exception e) when (e is FormatException or ConfigurationException or InvalidCastException or OverflowException or ArgumentException)
        {
            throw new UsageException($"{name(key)}: '{c.GetString(key)}' is not a valid value ({e.Message}).");
        }
    }
}

/// <summary>
/// Environment variables that override hocon/cluster.conf (and are overridden by flags), for a service manager or a
/// container that configures a process by its environment: FEDAVG_FEDERATION, FEDAVG_JOIN_TIMEOUT, FEDAVG_SERVER_WAIT,
/// FEDAVG_WAIT_FOR_CLIENTS, FEDAVG_LEAVE_TIMEOUT, FEDAVG_SERVER_RESTARTS (the `fedavg.cluster` keys), and FEDAVG_HOSTNAME,
/// FEDAVG_BIND_HOSTNAME, FEDAVG_PORT, FEDAVG_JOIN (the defaults of the flags of the same names).
/// </summary>
public static class ClusterEnvironment
{
    static readonly (string Variable, string Key)[] Keys =
    [
        ("FEDAVG_FEDERATION", "federation"), ("FEDAVG_JOIN_TIMEOUT", "join-timeout"), ("FEDAVG_SERVER_WAIT", "server-wait"),
        ("FEDAVG_WAIT_FOR_CLIENTS", "wait-for-clients"), ("FEDAVG_LEAVE_TIMEOUT", "leave-timeout"), ("FEDAVG_SERVER_RESTARTS", "server-restarts"),
    ];

    /// <summary>HOCON lines for the `fedavg.cluster` keys set in the environment (values quoted: they are text).</summary>
    public static string Overrides(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        return string.Join("\n", Keys.Where(k => !string.IsNullOrEmpty(variable(k.Variable)))
            .Select(k => $"fedavg.cluster.{k.Key} = {System.Text.Json.JsonSerializer.Serialize(variable(k.Variable))}"));
    }

    /// <summary>The `fedavg.cluster` keys set in the environment, each with its variable ($FEDAVG_JOIN_TIMEOUT): what an error about them names.</summary>
    public static Dictionary<string, string> Given(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        return Keys.Where(k => !string.IsNullOrEmpty(variable(k.Variable))).ToDictionary(k => k.Key, k => "$" + k.Variable);
    }

    /// <summary>A flag's default from the environment, else <paramref name="fallback"/>.</summary>
    public static string Text(string variable, string fallback) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } v ? v : fallback;

    public static int Port(string variable, int fallback) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } v
            ? int.TryParse(v, out int port) ? port : throw new UsageException($"environment variable {variable}='{v}' is not a port number.")
            : fallback;
}

/// <summary>Where a node listens and how others reach it.</summary>
/// <param name="Hostname">The address others use to reach this node (Akka's public-hostname).</param>
/// <param name="BindHostname">The interface it listens on (Akka's hostname); defaults to <paramref name="Hostname"/>.</param>
/// <param name="Port">0: any free port.</param>
/// <param name="DataPort">The server's weight channel (Transfer/WeightChannel); default <paramref name="Port"/> + 1, or any free port when <paramref name="Port"/> is 0.</param>
public sealed record Endpoint(string Hostname, string? BindHostname, int Port, int? DataPort = null)
{
    public string Bind => BindHostname ?? Hostname;

    public int WeightChannelPort => DataPort ?? (Port is 0 or 65535 ? 0 : Port + 1);

    /// <summary>"HOST:PORT" (an IPv6 host in brackets), as given to --join; errors name <paramref name="option"/>.</summary>
    public static (string Host, int Port) ParseHostPort(string text, string option)
    {
        int colon = text.LastIndexOf(':');
        string host = colon > 0 ? text[..colon].Trim('[', ']') : "";
        if (colon <= 0 || host.Length == 0 || !int.TryParse(text[(colon + 1)..], out int port) || port is < 1 or > 65535)
            throw new UsageException($"{option} '{text}': expected HOST:PORT, for example 10.0.0.5:4053 or server.example.org:4053.");
        if (Uri.CheckHostName(host) == UriHostNameType.Unknown) throw new UsageException($"{option} '{text}': '{host}' is not a host name or address.");
        return (host, port);
    }

    public void Validate(string portOption = "--port")
    {
        if (Port is < 0 or > 65535) throw new UsageException($"{portOption} {Port}: a port is 0 (any free one) to 65535.");
        if (DataPort is < 0 or > 65535) throw new UsageException($"--data-port {DataPort}: a port is 0 (any free one) to 65535.");
        if (DataPort is { } d && d != 0 && d == Port) throw new UsageException($"--data-port {d}: the weight channel needs a port of its own, not --port's.");
        foreach (var (name, host) in new[] { ("--hostname", Hostname), ("--bind-hostname", Bind) })
            if (Uri.CheckHostName(host) == UriHostNameType.Unknown) throw new UsageException($"{name} '{host}' is not a host name or address.");
    }

    /// <summary>Refuses a port that is taken before Akka tries it, so the message can name the flag.</summary>
    public void CheckPortFree(string portOption = "--port") => CheckFree(Port, portOption);

    /// <summary>The server's weight channel port, checked as <see cref="CheckPortFree"/> checks Akka's.</summary>
    public void CheckDataPortFree() => CheckFree(WeightChannelPort, DataPort is null ? "the weight channel's port (--port + 1; choose one with --data-port)" : "--data-port");

    void CheckFree(int port, string portOption)
    {
        // port 0 (any free port) is probed too: it still finds a bind address that is not this machine's, which
        // otherwise reached Akka and came back as a RemoteTransportException with DotNetty's stack trace
        var Port = port;
        try
        {
            var addresses = IPAddress.TryParse(Bind, out var ip) ? [ip] : Dns.GetHostAddresses(Bind);
            foreach (var address in addresses)
            {
                using var probe = new TcpListener(address, Port);
                probe.Start();
                probe.Stop();
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new UsageException($"{portOption} {Port}: {Bind}:{Port} is already in use (another fedavg server?); choose another port.");
        }
        catch (SocketException e)
        {
            throw new UsageException(CannotListen(Port, e));
        }
    }

    /// <summary>
    /// Why this node cannot listen, naming what chose the interface: --bind-hostname, or --hostname when it is not
    /// given. An address of another machine (a NAT's or a cloud's public address) is a --hostname that this machine
    /// cannot bind: the hint says to bind its own.
    /// </summary>
    public string CannotListen(int port, SocketException e, string portPart = "") => BindHostname is not null
        ? $"--bind-hostname '{Bind}'{portPart}: cannot listen on {Bind}:{port} ({e.Message})."
        : $"--hostname '{Hostname}'{portPart}: cannot listen on {Hostname}:{port} ({e.Message}); without --bind-hostname a node listens " +
          "on its --hostname. " + (e.SocketErrorCode == SocketError.AddressNotAvailable
              ? $"If {Hostname} is how other machines reach this one but not an address of its own (behind a NAT, a cloud's public address), " +
                "keep it as --hostname and listen with --bind-hostname on this machine's own address (0.0.0.0 for all)."
              : "Give the interface to listen on with --bind-hostname (0.0.0.0 for all).");
}

/// <summary>Builds cluster actor systems from the layered HOCON and joins them.</summary>
public static class ClusterHosting
{
    public const string SystemName = "fedavg";
    public const string ServerRole = "server";
    public const string ClientRole = "client";
    /// <summary>The singleton manager's name: the coordinator is /user/coordinator/singleton on the oldest server node.</summary>
    public const string CoordinatorName = "coordinator";
    /// <summary>A node's ClientHost: /user/node on every client member, which a new coordinator asks to register again.</summary>
    public const string NodeAgentName = "node";
    /// <summary>On every server member: /user/standby-feed replicates the run to standby servers (Server/StandbyFeed).</summary>
    public const string StandbyFeedName = "standby-feed";

    /// <summary>The address protocol of a node: akka.ssl.tcp with TLS, akka.tcp without.</summary>
    public static string Protocol(TransportSecurity? tls) => tls is null ? "akka.tcp" : "akka.ssl.tcp";

    public static Config Configure(Config layered, Endpoint endpoint, string role, TransportSecurity? tls = null) =>
        ConfigurationFactory.ParseString($$"""
            akka.cluster.roles = ["{{role}}"]
            akka.remote.dot-netty.tcp.hostname = "{{endpoint.Bind}}"
            akka.remote.dot-netty.tcp.public-hostname = "{{endpoint.Hostname}}"
            akka.remote.dot-netty.tcp.port = {{endpoint.Port}}
            akka.remote.dot-netty.tcp.enable-ssl = {{(tls is null ? "off" : "on")}}
            """).WithFallback(layered);

    /// <summary>
    /// Creates an actor system from settings that a user's HOCON (hocon/*.conf, --config) took part in: Akka's refusal of
    /// one of them (`akka.actor.provider = bogus`, `akka.loglevel = LOUD`) is a usage error with Akka's reason, not a
    /// ConfigurationException or ArgumentException with its stack trace.
    /// </summary>
    public static ActorSystem Create(Func<ActorSystem> create)
    {
        try
        {
            return create();
        }
        catch (Exception e) when (e is ConfigurationException or ArgumentException or TypeLoadException)
        {
            throw new UsageException($"an akka setting (hocon/*.conf or --config) is not valid: {e.Message}");
        }
    }

    /// <summary>Starts the actor system (with TLS: <paramref name="tls"/>'s certificate and validator); a bind failure becomes a usage error that names the address.</summary>
    public static ActorSystem Start(Config config, Endpoint endpoint, TransportSecurity? tls = null)
    {
        try
        {
            if (tls is null) return Create(() => ActorSystem.Create(SystemName, config));
            var system = Create(() => ActorSystem.Create(SystemName, BootstrapSetup.Create().WithConfig(config).And(tls.Setup())));
            var log = Logging.GetLogger(system, "tls");
            tls.OnRevocationsChanged = line => log.Warning("TLS: {0}", line);
            var answers = PlaintextAnswers.GetValue(system, _ => new StrongBox<bool>());
            system.EventStream.Subscribe(system.ActorOf(Props.Create(() => new PlaintextWatcher(answers)), "tls-plaintext-answers"), typeof(Error));
            return system;
        }
        catch (Exception e) when (SocketErrorIn(e) is { } socket)
        {
            // the port was free when probed and taken since, or the bind failed for a reason the probe did not meet
            throw new UsageException(endpoint.CannotListen(endpoint.Port, socket, $", --port {endpoint.Port}"));
        }
    }

    /// <summary>
    /// The socket error under <paramref name="e"/>, following every inner exception: GetBaseException stops at the
    /// first exception under an AggregateException, which for a failed bind is Akka's RemoteTransportException.
    /// </summary>
    static SocketException? SocketErrorIn(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is SocketException socket) return socket;
            if (e is AggregateException { InnerExceptions.Count: > 1 } many)
                return many.InnerExceptions.Select(SocketErrorIn).FirstOrDefault(s => s is not null);
        }
        return null;
    }

    /// <summary>Akka.Remote shuts the actor system down when an outbound TLS handshake fails; the reason it gave, or null.</summary>
    public static string? TlsFailure(ActorSystem system) =>
        CoordinatedShutdown.Get(system).ShutdownReason is { } reason && reason.GetType().Name == "TlsHandshakeFailureReason" ? reason.ToString() : null;

    /// <summary>
    /// With TLS: whether a peer answered this member's handshake with bytes that are no TLS record, as a server without
    /// TLS does (it waits out its own 15 s handshake-timeout, then sends a plaintext Akka frame). Akka.Remote's reason
    /// for the shutdown (<see cref="TlsFailure"/>) does not say so; only the error DotNetty's TLS handler logs does
    /// (NotSslRecordException), which this member watches for from its start.
    /// </summary>
    public static bool PlaintextAnswered(ActorSystem system) => PlaintextAnswers.TryGetValue(system, out var seen) && Volatile.Read(ref seen.Value);

    /// <summary>What to do about a server that answered in plaintext (<see cref="PlaintextAnswered"/>).</summary>
    public const string PlaintextServerHint =
        "Start the server with --tls-cert and --tls-ca from the same CA (the README's \"Train across machines\"), or, on loopback only, leave them off here too.";

    static readonly ConditionalWeakTable<ActorSystem, StrongBox<bool>> PlaintextAnswers = new();

    sealed class PlaintextWatcher : ReceiveActor
    {
        public PlaintextWatcher(StrongBox<bool> seen) =>
            Receive<Error>(e =>
            {
                for (var cause = e.Cause; cause is not null; cause = cause.InnerException)
                    if (cause.GetType().Name == "NotSslRecordException") Volatile.Write(ref seen.Value, true);
            });
    }

    /// <summary>Completes when this member is Up; false after <paramref name="timeout"/>.</summary>
    public static async Task<bool> WaitUntilUp(ActorSystem system, TimeSpan timeout, CancellationToken cancel)
    {
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Cluster.Get(system).RegisterOnMemberUp(() => up.TrySetResult());
        var winner = await Task.WhenAny(up.Task, Task.Delay(timeout, cancel), system.WhenTerminated).ConfigureAwait(false);
        cancel.ThrowIfCancellationRequested();
        return winner == up.Task;
    }

    /// <summary>
    /// Completes once no member of <paramref name="role"/> other than this one is left in the cluster, or after
    /// <paramref name="timeout"/>. An unreachable member counts as gone: it cannot answer any more.
    /// </summary>
    public static Task WhenRoleGone(ActorSystem system, string role, TimeSpan timeout)
    {
        var gone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        system.ActorOf(Props.Create(() => new RoleWatcher(role, gone, true)));
        return Task.WhenAny(gone.Task, Task.Delay(timeout));
    }

    /// <summary>
    /// Completes once every member of <paramref name="role"/> other than this one is downed, leaving or removed: the split
    /// brain resolver's decision, not a moment's unreachability. A node learns so that its server is lost (and no
    /// standby took over), and leaves to join again.
    /// </summary>
    public static Task WhenRoleDowned(ActorSystem system, string role)
    {
        var gone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        system.ActorOf(Props.Create(() => new RoleWatcher(role, gone, false)));
        return gone.Task;
    }

    /// <summary>
    /// Downs every member of <paramref name="role"/> other than this one, and completes once each is removed from the
    /// cluster (or after <paramref name="timeout"/>), with their addresses. Downed, a member's own actor system shuts
    /// down (akka.cluster.run-coordinated-shutdown-when-down).
    /// </summary>
    public static async Task<IReadOnlyList<Address>> DownRole(ActorSystem system, string role, TimeSpan timeout)
    {
        var cluster = Cluster.Get(system);
        var others = cluster.State.Members.Where(m => m.HasRole(role) && !m.Address.Equals(cluster.SelfAddress)).Select(m => m.Address).ToList();
        if (others.Count == 0) return others;
        var removed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        system.ActorOf(Props.Create(() => new RemovalWatcher(others, removed)));
        foreach (var address in others) cluster.Down(address);
        await Task.WhenAny(removed.Task, Task.Delay(timeout)).ConfigureAwait(false);
        return others;
    }

    /// <summary>
    /// Completes once none of the addresses is a member, from the member events themselves: the cluster's read view
    /// may lag the last of them.
    /// </summary>
    sealed class RemovalWatcher : ReceiveActor
    {
        public RemovalWatcher(IReadOnlyList<Address> addresses, TaskCompletionSource removed)
        {
            var pending = new HashSet<Address>(addresses);
            void Done()
            {
                if (pending.Count > 0) return;
                removed.TrySetResult();
                Context.Stop(Self);
            }
            Receive<ClusterEvent.CurrentClusterState>(state =>
            {
                pending.IntersectWith(state.Members.Select(m => m.Address));
                Done();
            });
            Receive<ClusterEvent.MemberRemoved>(m =>
            {
                pending.Remove(m.Member.Address);
                Done();
            });
            Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot, typeof(ClusterEvent.MemberRemoved));
        }

        protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
    }

    sealed class RoleWatcher : ReceiveActor
    {
        public RoleWatcher(string role, TaskCompletionSource gone, bool unreachableIsGone)
        {
            var cluster = Cluster.Get(Context.System);
            void Check()
            {
                var state = cluster.State;
                if (!state.Members.Any(m => m.HasRole(role) && !m.Address.Equals(cluster.SelfAddress)
                                            && (!unreachableIsGone || !state.Unreachable.Contains(m))
                                            && m.Status is MemberStatus.Up or MemberStatus.Joining or MemberStatus.WeaklyUp))
                {
                    gone.TrySetResult();
                    Context.Stop(Self);
                }
            }
            Receive<ClusterEvent.IMemberEvent>(_ => Check());
            Receive<ClusterEvent.CurrentClusterState>(_ => Check());
            Receive<ClusterEvent.IReachabilityEvent>(_ => Check());
            cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
                typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        }

        protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
    }

    /// <summary>Leaves the cluster cleanly (coordinated shutdown) and waits for the actor system to end.</summary>
    public static async Task Leave(ActorSystem system)
    {
        await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClusterLeavingReason.Instance).ConfigureAwait(false);
        await system.WhenTerminated.ConfigureAwait(false);
    }
}

/// <summary>No server answered, or the server was gone for longer than the node waits: the node gives up.</summary>
public sealed class ServerUnreachableException(string message) : Exception(message);

/// <summary>
/// The split brain resolver removed this server from the cluster: it was cut off from two or more other members
/// (hocon/cluster.conf, keep-oldest with down-if-alone). A standby, if there is one, has taken over.
/// </summary>
/// <param name="OtherServers">Another member of role `server` was in the last state this server saw: a standby
/// that may have taken over, so this server must not go on with the run.</param>
/// <param name="Bound">Where the removed server listened (the ports --port 0 picked): where it goes on, if it does.</param>
public sealed class ServerDownedException(string message, bool OtherServers = true, Endpoint? Bound = null) : Exception(message)
{
    public bool OtherServers { get; } = OtherServers;

    public Endpoint? Bound { get; } = Bound;
}

/// <summary>The server refused this node (another federation, model or range); the node gives up with the reason.</summary>
public sealed class NodeRefusedException(string message) : Exception(message);
