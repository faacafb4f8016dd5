using System.Globalization;

namespace FedAvg.Core.Native;

/// <summary>The process's memory mappings (/proc/self/maps): which native libraries are loaded, and where.</summary>
static class ProcessMaps
{
    public readonly record struct Mapping(long Start, long End, string Permissions, string Path)
    {
        public bool Contains(nint address, int bytes) => address >= Start && address + bytes <= End;
    }

    /// <summary>Every mapping, in the kernel's order; none where /proc cannot be read.</summary>
    public static IReadOnlyList<Mapping> Read()
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/self/maps");
        }
        catch (IOException)
        {
            return [];
        }
        var mappings = new List<Mapping>(lines.Length);
        foreach (var line in lines)
        {
            // start-end perms offset dev inode [path]
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 5) continue;
            var range = fields[0].Split('-');
            if (range.Length != 2) continue;
            mappings.Add(new Mapping(
                long.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                long.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                fields[1], fields.Length == 6 ? fields[5].Trim() : ""));
        }
        return mappings;
    }
}
