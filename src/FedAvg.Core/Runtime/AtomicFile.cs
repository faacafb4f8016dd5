namespace FedAvg.Core.Runtime;

/// <summary>Writes files so that a reader sees the old content or the new, never a torn one.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }

    public static void WriteAllText(string path, string content) =>
        Write(path, s =>
        {
            using var writer = new StreamWriter(s, leaveOpen: true);
            writer.Write(content);
        });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> content)
    {
        var copy = content.ToArray();
        Write(path, s => s.Write(copy));
    }
}
