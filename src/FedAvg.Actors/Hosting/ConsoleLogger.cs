using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;

namespace FedAvg.Actors.Hosting;

/// <summary>
/// Akka's log for a person at a terminal: one line per event, time, level, source and message, and a failure's own
/// message instead of its stack trace. Connections that close because a node left or died are Akka.Remote's
/// business and the server reports membership itself, so those are kept at debug level.
/// </summary>
public sealed class ConsoleLogger : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    public ConsoleLogger()
    {
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<LogEvent>(Write);
    }

    static void Write(LogEvent e)
    {
        if (IsConnectionNoise(e)) return;
        var cause = e.Cause is null ? "" : $" ({e.Cause.GetBaseException().GetType().Name}: {e.Cause.GetBaseException().Message})";
        string message = WithoutStackTraces(e.Message?.ToString() ?? ""), source = Source(e.LogSource);
        // our own messages already say who speaks ("server: …", "node …: …")
        string who = message.StartsWith(source, StringComparison.Ordinal) ? "" : source + ": ";
        var line = $"{e.Timestamp.ToLocalTime():HH:mm:ss} {Level(e.LogLevel())} {who}{message}{cause}";
        ConsoleLines.Write(line, error: e.LogLevel() >= LogLevel.WarningLevel);
    }

    static bool IsConnectionNoise(LogEvent e) =>
        e.Cause?.GetBaseException().GetType().Name is "EndpointDisassociatedException" or "InvalidAssociationException" // internal types
        || e.LogSource.Contains("endpointManager/reliableEndpointWriter", StringComparison.Ordinal) && e.LogLevel() < LogLevel.ErrorLevel
           && e.Message?.ToString()?.Contains("Association with remote system", StringComparison.Ordinal) == true;

    static string Level(LogLevel level) => level switch
    {
        LogLevel.ErrorLevel => "error",
        LogLevel.WarningLevel => "warning",
        LogLevel.InfoLevel => "info",
        _ => "debug",
    };

    /// <summary>Some Akka messages embed an exception's ToString (association failures): keep its messages, drop its frames.</summary>
    public static string WithoutStackTraces(string message)
    {
        if (!message.Contains("\n   at ", StringComparison.Ordinal)) return message;
        var kept = message.Split('\n').Where(l =>
        {
            var t = l.TrimStart();
            return !(t.StartsWith("at ", StringComparison.Ordinal) && l.StartsWith("   ", StringComparison.Ordinal))
                   && !t.StartsWith("--- End of", StringComparison.Ordinal);
        });
        return string.Join("\n", kept);
    }

    /// <summary>The actor's name, not its whole address: "server", "node", "coordinator-proxy"; a class's name for "Class(akka://system)".</summary>
    static string Source(string source)
    {
        int paren = source.IndexOf("(akka", StringComparison.Ordinal);
        if (paren > 0) return source[..paren];
        int slash = source.LastIndexOf('/');
        return slash >= 0 && slash < source.Length - 1 ? Uri.UnescapeDataString(source[(slash + 1)..]) : source;
    }
}
