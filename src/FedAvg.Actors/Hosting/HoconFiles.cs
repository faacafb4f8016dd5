using Akka.Configuration;
using FedAvg.Core;

namespace FedAvg.Actors.Hosting;

/// <summary>Loads the layered configuration: hocon/NAME.conf shipped with the binaries, a user file, then overrides.</summary>
public static class HoconFiles
{
    public static string ShippedPath(string name) => Path.Combine(AppContext.BaseDirectory, "hocon", name);

    public static Config Load(string shippedName, string? userFile = null, string? overrides = null) =>
        Load([shippedName], userFile, overrides);

    /// <summary>Each shipped file over the one before it (cluster.conf over simulation.conf), then the user's file, then overrides.</summary>
    public static Config Load(IReadOnlyList<string> shippedNames, string? userFile = null, string? overrides = null)
    {
        Config config = Config.Empty;
        foreach (var name in shippedNames)
        {
            string shipped = ShippedPath(name);
            if (!File.Exists(shipped)) throw new InvalidOperationException($"{shipped} is missing from the build output.");
            config = Parse(File.ReadAllText(shipped), shipped).WithFallback(config);
        }
        if (userFile is not null)
        {
            if (!File.Exists(userFile)) throw new UsageException($"--config {userFile}: file not found.");
            string text;
            try
            {
                text = File.ReadAllText(userFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new UsageException($"--config {userFile}: cannot be read ({e.Message}).");
            }
            config = Parse(text, userFile).WithFallback(config);
        }
        if (!string.IsNullOrWhiteSpace(overrides)) config = Parse(overrides, "command-line options").WithFallback(config);
        return config;
    }

    /// <summary>
    /// Checks <paramref name="userFile"/> (if any) over the shipped files alone with <paramref name="check"/>, before
    /// flags and the environment are laid over it, so that a bad value the flags override is refused too (it was taken
    /// in silence, and misled the next run that used the file without the flag); the error names the file.
    /// </summary>
    public static void CheckFileAlone(IReadOnlyList<string> shippedNames, string? userFile, Action<Config> check)
    {
        if (userFile is null) return;
        var alone = Load(shippedNames, userFile);
        try
        {
            check(alone);
        }
        catch (UsageException e)
        {
            throw new UsageException($"--config {userFile}: {e.Message}");
        }
    }

    public static Config Parse(string text, string origin)
    {
        // Akka's HOCON parser accepts almost anything (an unclosed brace, a key with no value) and silently
        // drops what it cannot read, so we check the structure ourselves first.
        Lint(text, origin);
        RefuseDuplicateKeysInListEntries(text, origin);
        // Akka's parser has no file to resolve an include against and fails with a NullReferenceException
        if (System.Text.RegularExpressions.Regex.Match(text, @"^[ \t]*include\b", System.Text.RegularExpressions.RegexOptions.Multiline) is { Success: true } include)
            throw new UsageException($"{origin}: line {text[..include.Index].Count(ch => ch == '\n') + 1}: include is not supported; " +
                                     "put the settings in this file (each command takes one --config, layered over hocon/*.conf).");
        try
        {
            return ConfigurationFactory.ParseString(text);
        }
        catch (Exception e)
        {
            throw new UsageException($"{origin}: invalid HOCON ({e.Message}).");
        }
    }

    /// <summary>
    /// Refuses a key given twice in one object that is an element of a list (an entry of `fedavg.faults`): HOCON keeps
    /// the last and drops the first without a word, so `{ behaviour = drop, behaviour = crash }` would crash every
    /// client. Names the entry as the settings do (`fedavg.faults[0].behaviour`). Runs after <see cref="Lint"/>.
    /// </summary>
    public static void RefuseDuplicateKeysInListEntries(string text, string origin)
    {
        // one frame per open brace or bracket: its path, and for an object its keys so far and whether a value is being read
        var frames = new Stack<Frame>();
        frames.Push(new Frame('{', "", null));
        var token = new System.Text.StringBuilder();
        string? lastKey = null;
        int line = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            var top = frames.Peek();
            if (c == '\n')
            {
                line++;
                if (top.Bracket == '{') EndEntry(top);
                else top.ExpectElement = true;
                continue;
            }
            if (char.IsWhiteSpace(c)) continue;
            if (c == '#' || (c == '/' && i + 1 < text.Length && text[i + 1] == '/'))
            {
                while (i + 1 < text.Length && text[i + 1] != '\n') i++;
                continue;
            }
            if (top.Bracket == '[' && c != ',' && c != ']' && top.ExpectElement)
            {
                top.ExpectElement = false;
                top.Index++;
            }
            if (c == '"')
            {
                int start = i;
                if (i + 2 < text.Length && text[i + 1] == '"' && text[i + 2] == '"')
                {
                    int end = text.IndexOf("\"\"\"", i + 3, StringComparison.Ordinal);
                    line += text.AsSpan(i, end - i).Count('\n');
                    i = end + 2;
                }
                else
                {
                    int j = i + 1;
                    while (text[j] != '"') j += text[j] == '\\' ? 2 : 1;
                    i = j;
                }
                if (top.Bracket == '{' && !top.InValue) token.Append(text.AsSpan(start, i - start + 1).Trim('"'));
                continue;
            }
            switch (c)
            {
                case ',':
                    if (top.Bracket == '{') EndEntry(top);
                    else top.ExpectElement = true;
                    break;
                case '=' or ':':
                    if (top.Bracket == '{' && !top.InValue) Key(top);
                    break;
                case '+' when i + 1 < text.Length && text[i + 1] == '=':
                    if (top.Bracket == '{' && !top.InValue) Key(top);
                    i++;
                    break;
                case '{' or '[':
                {
                    string path;
                    if (top.Bracket == '[') path = $"{top.Path}[{top.Index - 1}]";
                    else
                    {
                        if (!top.InValue && token.Length > 0) Key(top); // `key { … }`
                        path = Join(top.Path, lastKey ?? "");
                    }
                    frames.Push(new Frame(c, path, c == '{' && top.Bracket == '[' ? new HashSet<string>() : null));
                    break;
                }
                case '}' or ']':
                    frames.Pop();
                    EndEntry(frames.Peek()); // the object or list was the value of its key
                    break;
                default:
                    if (top.Bracket == '{' && !top.InValue) token.Append(c);
                    break;
            }
        }

        void EndEntry(Frame frame)
        {
            frame.InValue = false;
            token.Clear();
        }

        void Key(Frame frame)
        {
            string key = token.ToString();
            token.Clear();
            frame.InValue = true;
            lastKey = key;
            if (frame.Keys is not null && !frame.Keys.Add(key))
                throw new UsageException($"{origin}: line {line}: {Join(frame.Path, key)} is given twice in one entry (HOCON would keep only the last); give it once.");
        }

        static string Join(string path, string key) => path.Length == 0 ? key : key.Length == 0 ? path : $"{path}.{key}";
    }

    sealed class Frame(char bracket, string path, HashSet<string>? keys)
    {
        public char Bracket { get; } = bracket;
        public string Path { get; } = path;
        /// <summary>The keys of an object that is a list's element (null for other objects, which may repeat keys).</summary>
        public HashSet<string>? Keys { get; } = keys;
        public bool InValue { get; set; }
        public bool ExpectElement { get; set; } = true;
        public int Index { get; set; }
    }

    /// <summary>Refuses unterminated strings, unbalanced braces or brackets, and keys without a value.</summary>
    public static void Lint(string text, string origin)
    {
        var open = new Stack<(char Bracket, int Line)>();
        int line = 1;
        bool expectingValue = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\n')
            {
                if (expectingValue) Fail("a key has no value");
                line++;
                continue;
            }
            if (char.IsWhiteSpace(c)) continue;
            if (c == '#' || (c == '/' && i + 1 < text.Length && text[i + 1] == '/'))
            {
                while (i + 1 < text.Length && text[i + 1] != '\n') i++;
                continue;
            }
            if (c == '"')
            {
                bool triple = i + 2 < text.Length && text[i + 1] == '"' && text[i + 2] == '"';
                int start = line;
                if (triple)
                {
                    int end = text.IndexOf("\"\"\"", i + 3, StringComparison.Ordinal);
                    if (end < 0) Fail("unterminated \"\"\" string", start);
                    line += text.AsSpan(i, end - i).Count('\n');
                    i = end + 2;
                }
                else
                {
                    int j = i + 1;
                    while (j < text.Length && text[j] != '"' && text[j] != '\n') j += text[j] == '\\' ? 2 : 1;
                    if (j >= text.Length || text[j] != '"') Fail("unterminated string", start);
                    i = j;
                }
                expectingValue = false;
                continue;
            }
            if (expectingValue && (c == '}' || c == ']' || c == ',')) Fail("a key has no value");
            expectingValue = false;
            switch (c)
            {
                case '{' or '[':
                    open.Push((c, line));
                    break;
                case '}' or ']':
                    char expected = c == '}' ? '{' : '[';
                    if (open.Count == 0 || open.Peek().Bracket != expected) Fail($"'{c}' closes nothing");
                    open.Pop();
                    break;
                case '=' or ':':
                    expectingValue = true;
                    break;
            }
        }
        if (expectingValue) Fail("a key has no value");
        if (open.Count > 0) Fail($"'{open.Peek().Bracket}' is never closed", open.Peek().Line);

        void Fail(string reason, int? at = null) =>
            throw new UsageException($"{origin}: invalid HOCON at line {at ?? line}: {reason}.");
    }
}
